"""by-framework's documented plugin API on Byway, with only the import renamed: the
README's WeatherPlugin loaded by list, by configurator and by directory into a real
worker, each documented hook called with the documented arguments, its agent configs
visible to the task, and one run order over both spellings of ``priority``."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from byway import (
    AgentConfig,
    AgentContext,
    AgentTaskResult,
    AskAgentCommand,
    Command,
    GatewayClient,
    GatewayWorker,
    Plugin,
    PluginManager,
    PluginManifest,
    RedisSettings,
    ResumeCommand,
)
from byway.plugins import PluginBuildContext, PluginRegistry, TaskFailure, discover_plugins
from byway.registry import WorkerInfo
from tests.agents.plugged import callee
from tests.conftest import running, stop_process, until_status, wait_online

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

#: the README's "Writing a Plugin" with ``by_framework`` renamed ``byway``; the hooks
#: record what they are given (``CALLS``) instead of ``...``
WEATHER = textwrap.dedent(
    """
    from byway import Plugin, PluginManifest, AgentConfig, PluginBuildContext, AgentContext

    CALLS = []

    class WeatherPlugin(Plugin):
        def __init__(self):
            super().__init__(PluginManifest(plugin_id="weather", version="1.0.0"))

        async def register_agent_configs(self, ctx: PluginBuildContext) -> list[AgentConfig]:
            return [
                AgentConfig(
                    agent_id="weather_agent",
                    tools={
                        "get_weather": self._get_weather,
                    },
                    prompts={
                        "system": "You are a weather assistant."
                    },
                )
            ]

        async def _get_weather(self, city: str) -> dict:
            return {"city": city, "temp": 22, "condition": "sunny"}

        # Lifecycle hooks
        async def on_task_start(self, context: AgentContext):
            CALLS.append(("on_task_start", context))
        async def on_task_complete(self, context: AgentContext, result):
            CALLS.append(("on_task_complete", context, result))
        async def on_task_error(self, context: AgentContext, error: Exception):
            CALLS.append(("on_task_error", context, error))
        async def on_task_cancel(self, context: AgentContext, reason: str):
            CALLS.append(("on_task_cancel", context, reason))
        async def on_call_agent_start(self, context: AgentContext, target: str, content):
            CALLS.append(("on_call_agent_start", context, target, content))
        async def on_call_agent_complete(self, context: AgentContext, target: str, result):
            CALLS.append(("on_call_agent_complete", context, target, result))
        async def on_worker_startup(self):
            CALLS.append(("on_worker_startup",))
        async def on_worker_shutdown(self):
            CALLS.append(("on_worker_shutdown",))
    """
)


class WeatherWorker(GatewayWorker):
    """Answers with its agent config's prompt and tool; "fail" raises, "call" asks the
    callee, "wait" runs until cancelled."""

    def get_agent_types(self) -> list[str]:
        return ["weather_agent"]

    async def process_command(self, command: Command, context: AgentContext) -> object:
        if isinstance(command, ResumeCommand):
            return f"callee said {command.content}"
        assert isinstance(command, AskAgentCommand)
        if command.content == "fail":
            raise ValueError("no sky today")
        if command.content == "call":
            return await context.call_agent("callee", "hello", extra_payload={"via": "bf"})
        if command.content == "configs":
            found = context.get_agent_config("weather_agent")
            return {
                "content": context.generate_message_id(),
                "reply_data": {
                    "ids": [c.agent_id for c in context.list_agent_configs()],
                    "found": found.agent_id if found else None,
                    "missing": context.get_agent_config("nope"),
                },
            }
        if command.content == "wait":
            while True:
                await context.check_cancelled()
                await asyncio.sleep(0.02)
        config = context.agent_config
        if config is None or not isinstance(config.tools, dict):
            return "no weather config"
        weather = await config.tools["get_weather"]("Paris")
        return {"content": config.prompts["system"], "reply_data": weather}


def _weather_module(directory: Path) -> Any:
    """The WeatherPlugin source as a user's file ``weather.py`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "weather.py"
    path.write_text(WEATHER)
    spec = importlib.util.spec_from_file_location(f"weather_{directory.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _by_list(tmp_path: Path) -> tuple[list[Plugin], list[Any]]:
    module = _weather_module(tmp_path / "mod")
    return discover_plugins([module.WeatherPlugin()]), module.CALLS


def _by_configurator(tmp_path: Path) -> tuple[list[Plugin], list[Any]]:
    module = _weather_module(tmp_path / "mod")

    def setup(registry: Any) -> None:
        registry.register_bundle(module.WeatherPlugin())

    return discover_plugins(plugin_configurator=setup), module.CALLS


def _by_directory(tmp_path: Path) -> tuple[list[Plugin], list[Any]]:
    directory = tmp_path / "my_plugins"
    _weather_module(directory)  # writes the file
    plugins = discover_plugins(plugin_dir=str(directory))
    (weather,) = [p for p in plugins if p.plugin_id == "weather"]
    return plugins, sys.modules[type(weather).__module__].CALLS  # type: ignore[attr-defined]


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never held")


def _named(calls: list[Any], hook: str) -> list[Any]:
    return [c for c in calls if c[0] == hook]


@pytest.mark.parametrize("load", [_by_list, _by_configurator, _by_directory])
async def test_the_readme_weather_plugin_runs_with_its_documented_hooks(
    load: Callable[[Path], tuple[list[Plugin], list[Any]]],
    tmp_path: Path,
    client: GatewayClient,
    settings: RedisSettings,
) -> None:
    plugins, calls = load(tmp_path)
    (weather,) = [p for p in plugins if p.plugin_id == "weather"]
    assert (weather.plugin_id, weather.name, weather.version) == ("weather", "weather", "1.0.0")
    async with (
        running(callee, settings, plugins=[]),
        running(WeatherWorker(), settings, plugins=plugins) as runner,
    ):
        assert calls[0] == ("on_worker_startup",)
        # register_agent_configs' config is the task's, with its tool
        assert runner.agent_configs["weather_agent"].prompts == {
            "system": "You are a weather assistant."
        }
        sent = await client.send_message("weather_agent", "w-ok", "how is it?")
        final = await client.wait_for_final("w-ok", sent.message_id, timeout=20)
        assert final.data["content"] == "You are a weather assistant."
        assert final.data["reply_data"] == {"city": "Paris", "temp": 22, "condition": "sunny"}
        await _until(lambda: bool(_named(calls, "on_task_complete")))
        ((_, ctx, result),) = _named(calls, "on_task_complete")
        assert isinstance(ctx, AgentContext) and ctx.message_id == sent.message_id
        assert isinstance(result, AgentTaskResult)
        assert result.content == "You are a weather assistant."

        failed = await client.send_message("weather_agent", "w-fail", "fail")
        await client.wait_for_final("w-fail", failed.message_id, timeout=20)
        await _until(lambda: bool(_named(calls, "on_task_error")))
        ((_, ctx, error),) = _named(calls, "on_task_error")
        assert isinstance(ctx, AgentContext) and ctx.message_id == failed.message_id
        assert isinstance(error, Exception) and str(error) == "no sky today"
        assert error["type"] == "ValueError"  # and Byway's mapping, both at once

        called = await client.send_message("weather_agent", "w-call", "call")
        answer = await client.wait_for_final("w-call", called.message_id, timeout=20)
        assert answer.data["content"] == "callee said hi"
        await _until(lambda: bool(_named(calls, "on_call_agent_complete")))
        ((_, ctx, target, content),) = _named(calls, "on_call_agent_start")
        assert isinstance(ctx, AgentContext) and (target, content) == ("callee", "hello")
        ((_, ctx, target, result),) = _named(calls, "on_call_agent_complete")
        assert isinstance(ctx, AgentContext) and target == "callee"
        assert result["status"] == "COMPLETED" and result["content"] == "hi"
        assert result["parent_message_id"] == called.message_id
        entries = await client.redis.xrange(settings.keys.agent_stream("callee"))
        asks = [json.loads(fields[b"data"]) for _, fields in entries]
        assert [a["body"]["extra_payload"] for a in asks] == [{"via": "bf"}]

        listed = await client.send_message("weather_agent", "w-configs", "configs")
        configs = await client.wait_for_final("w-configs", listed.message_id, timeout=20)
        assert configs.data["content"].startswith("msg")
        assert configs.data["reply_data"] == {
            "ids": ["weather_agent"],
            "found": "weather_agent",
            "missing": None,
        }

        waiting = await client.send_message("weather_agent", "w-cancel", "wait")
        await until_status(client, "w-cancel", waiting.message_id, "RUNNING")
        await client.cancel_task(waiting.message_id, "w-cancel", reason="user stopped it")
        await _until(lambda: bool(_named(calls, "on_task_cancel")))
        ((_, ctx, reason),) = _named(calls, "on_task_cancel")
        assert isinstance(ctx, AgentContext) and ctx.message_id == waiting.message_id
        assert reason == "user stopped it"
        assert not _named(calls, "on_worker_shutdown")
    assert calls[-1] == ("on_worker_shutdown",)
    stats = runner.plugins.summary()["weather"]
    assert all(s["error"] == 0 and s["timeout"] == 0 for s in stats.values()), stats


class BywayStyle(Plugin):
    """Byway's own spelling, in the same worker as the by-framework one."""

    manifest = PluginManifest("byway-style", priority=10)

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    async def setup(self, ctx: PluginBuildContext) -> None:
        ctx.add_agent_config(AgentConfig(agent_id="weather_agent", prompts={"style": "terse"}))

    async def on_worker_startup(self, info: WorkerInfo) -> None:
        self.seen.append(("startup", info))

    async def on_task_error(self, ctx: AgentContext, error: dict[str, str]) -> None:
        self.seen.append(("error", dict(error)))

    async def on_call_agent_start(self, ctx: AgentContext, command: AskAgentCommand) -> None:
        self.seen.append(("call", command))

    async def on_call_agent_complete(self, ctx: AgentContext, reply: ResumeCommand) -> None:
        self.seen.append(("reply", reply))


async def test_byway_style_hooks_keep_their_arguments_beside_by_framework_ones(
    tmp_path: Path, client: GatewayClient, settings: RedisSettings
) -> None:
    module = _weather_module(tmp_path)
    byway_style = BywayStyle()
    plugins = [module.WeatherPlugin(), byway_style]
    worker = WeatherWorker()
    async with (
        running(callee, settings, plugins=[]),
        running(worker, settings, plugins=plugins) as runner,
    ):
        # both registered for one agent: merged
        assert runner.agent_configs["weather_agent"].prompts == {
            "system": "You are a weather assistant.",
            "style": "terse",
        }
        failed = await client.send_message("weather_agent", "b-fail", "fail")
        await client.wait_for_final("b-fail", failed.message_id, timeout=20)
        called = await client.send_message("weather_agent", "b-call", "call")
        await client.wait_for_final("b-call", called.message_id, timeout=20)
        await _until(lambda: any(k == "reply" for k, _ in byway_style.seen))
    kinds = {k: v for k, v in byway_style.seen}
    assert isinstance(kinds["startup"], WorkerInfo)
    assert kinds["startup"].worker_id == worker.worker_id
    assert kinds["error"] == {"type": "ValueError", "message": "no sky today"}
    assert isinstance(kinds["call"], AskAgentCommand)
    assert kinds["call"].header.target_agent_type == "callee"
    assert isinstance(kinds["reply"], ResumeCommand) and kinds["reply"].content == "hi"


def _ordered(order: list[str], manifest: PluginManifest) -> Plugin:
    class Ordered(Plugin):
        async def on_task_start(self, ctx: AgentContext) -> None:
            order.append(self.plugin_id)

    return Ordered(manifest)


async def test_one_run_order_over_both_spellings_of_priority(
    client: GatewayClient, settings: RedisSettings
) -> None:
    order: list[str] = []
    plugins = [
        _ordered(order, PluginManifest("byway-late", priority=200)),
        _ordered(order, PluginManifest(plugin_id="bf-low", priority=5)),
        _ordered(order, PluginManifest("byway-early", priority=10)),
        _ordered(order, PluginManifest(plugin_id="bf-high", priority=50)),
        _ordered(order, PluginManifest(plugin_id="bf-default")),
        _ordered(order, PluginManifest("byway-explicit", priority=60, higher_first=True)),
        _ordered(order, PluginManifest(plugin_id="bf-off", priority=99, enabled=False)),
    ]
    async with running(WeatherWorker(), settings, plugins=plugins):
        sent = await client.send_message("weather_agent", "order-s", "wait")
        await until_status(client, "order-s", sent.message_id, "RUNNING")
        await client.cancel_task(sent.message_id, "order-s")
    # by-framework's spelling: higher first; Byway's: lower first; one line: -p and p
    assert order == ["byway-explicit", "bf-high", "bf-low", "bf-default", "byway-early",
                     "byway-late"]  # fmt: skip
    # Byway's own plugins keep theirs: Phoenix (40) before Langfuse and Postgres (50)
    phoenix, langfuse = (
        PluginManifest("trace-phoenix", priority=40),
        PluginManifest("trace-langfuse", priority=50),
    )
    assert phoenix.rank < langfuse.rank


def test_the_manifest_and_plugin_take_both_spellings_and_name_the_bad_field() -> None:
    theirs = PluginManifest(plugin_id="weather", version="1.0.0")
    assert (theirs.id, theirs.plugin_id, theirs.priority, theirs.enabled) == (
        "weather", "weather", 0, True,
    )  # fmt: skip
    ours = PluginManifest("audit")
    assert (ours.plugin_id, ours.version, ours.priority) == ("audit", "0", 100)
    with pytest.raises(ValueError, match=r"PluginManifest\.plugin_id: expected"):
        PluginManifest(plugin_id="no spaces")
    with pytest.raises(ValueError, match=r"PluginManifest\.id: expected"):
        PluginManifest("")
    with pytest.raises(ValueError, match=r"PluginManifest\.priority"):
        PluginManifest(plugin_id="x", priority="high")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Plugin\.manifest"):
        Plugin("weather")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hook_timeout_seconds"):
        Plugin(theirs, hook_timeout_seconds=0)
    with pytest.raises(Exception, match="on_call_agent_start takes parameters"):

        class Wrong(Plugin):
            manifest = PluginManifest("wrong")

            async def on_call_agent_start(self, a: Any, b: Any, c: Any, d: Any) -> None: ...

        PluginManager([Wrong()])


async def test_a_plugin_hook_timeout_of_its_own_applies(
    client: GatewayClient, settings: RedisSettings
) -> None:
    class Slow(Plugin):
        def __init__(self) -> None:
            super().__init__(PluginManifest(plugin_id="slow"), hook_timeout_seconds=0.2)

        async def on_task_start(self, context: AgentContext) -> None:
            await asyncio.sleep(60)

    async with running(
        WeatherWorker(), settings, plugins=[Slow()], plugin_hook_timeout_seconds=60
    ) as runner:
        sent = await client.send_message("weather_agent", "slow-s", "hi")
        final = await client.wait_for_final("slow-s", sent.message_id, timeout=30)
        stats = runner.plugins.summary()
    assert final.data["status"] == "COMPLETED"
    assert stats["slow"]["on_task_start"]["timeout"] == 1


@pytest.mark.parametrize("log_stats", [True, False])
async def test_hook_stats_at_shutdown_are_logged_unless_turned_off(
    client: GatewayClient,
    settings: RedisSettings,
    caplog: pytest.LogCaptureFixture,
    log_stats: bool,
) -> None:
    class Counted(Plugin):
        def __init__(self) -> None:
            super().__init__(PluginManifest(plugin_id="counted"))

        async def on_task_start(self, context: AgentContext) -> None:
            return None

    caplog.set_level("INFO", logger="byway.plugins")
    async with running(
        WeatherWorker(), settings, plugins=[Counted()], plugin_log_hook_stats_on_shutdown=log_stats
    ):
        sent = await client.send_message("weather_agent", "stats-s", "hi")
        await client.wait_for_final("stats-s", sent.message_id, timeout=30)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("plugin counted:")]
    assert lines == (
        ["plugin counted: on_task_start 1 ok/0 failed/0 timed out"] if log_stats else []
    )


async def test_build_context_reads_as_by_framework_and_byway_both() -> None:
    ctx = PluginBuildContext()
    first = AgentConfig(agent_id="a", tools=["t1"])
    ctx.set_agent_configs([first])
    assert [c.agent_id for c in ctx.list_agent_configs()] == ["a"]
    assert [c.agent_id for c in ctx.agent_configs] == ["a"]  # a list, by-framework's
    assert ctx.agent_configs["a"].tools == ["t1"] and "a" in ctx.agent_configs  # a dict
    assert [k for k, _ in ctx.agent_configs.items()] == ["a"]
    ctx.add_agent_config(AgentConfig(agent_id="a", tools=["t2"]))  # merges by default
    assert ctx.agent_configs["a"].tools == ["t1", "t2"]
    assert first.tools == ["t1"]  # the plugin's own object is never changed
    with pytest.raises(ValueError, match="registered twice"):
        ctx.add_agent_config(AgentConfig(agent_id="a", on_conflict="error"))
    ctx.add_agent_config(AgentConfig(agent_id="a", tools={"t3": len}, on_conflict="overwrite"))
    assert ctx.agent_configs["a"].tools == {"t3": len}
    with pytest.raises(ValueError, match=r"AgentConfig\.on_conflict"):
        AgentConfig(agent_id="b", on_conflict="maybe")
    with pytest.raises(ValueError, match="register_agent_configs: expected a list"):
        ctx.add_agent_configs(AgentConfig(agent_id="b"))  # type: ignore[arg-type]


async def test_a_by_framework_reload_returns_the_next_configs() -> None:
    class Versioned(Plugin):
        def __init__(self) -> None:
            super().__init__(PluginManifest(plugin_id="versioned"))

        async def register_agent_configs(self, ctx: PluginBuildContext) -> list[AgentConfig]:
            return [AgentConfig(agent_id="v", prompts={"system": "one"})]

        async def reload(self, context: Any) -> list[AgentConfig]:
            assert context.reload_id == "r-1" and context.plugin_id == "versioned"
            assert [c.agent_id for c in context.previous_stable_agent_configs] == ["v"]
            return [AgentConfig(agent_id="v", prompts={"system": "two"})]

    manager = PluginManager([Versioned()])
    ctx = PluginBuildContext()
    await manager.build(ctx)
    assert ctx.agent_configs["v"].prompts == {"system": "one"}
    again = PluginBuildContext(
        reload_id="r-1", previous_stable_agent_configs=tuple(ctx.agent_configs)
    )
    await manager.build(again, reload=True)
    assert again.agent_configs["v"].prompts == {"system": "two"}


def test_the_error_a_hook_gets_is_an_exception_and_a_mapping() -> None:
    error = TaskFailure({"type": "ValueError", "message": "boom"})
    assert isinstance(error, Exception) and str(error) == "boom" and error.args == ("boom",)
    assert dict(error) == {"type": "ValueError", "message": "boom"} == error
    assert error.type == "ValueError" and error.get("message") == "boom"


def test_the_configurator_gets_a_registry_that_is_still_a_list() -> None:
    seen: list[Any] = []

    class Mine(Plugin):
        manifest = PluginManifest("mine")

    def byway_style(plugins: list[Plugin]) -> list[Plugin]:
        seen.append(plugins)
        return [*plugins, Mine()]

    found = discover_plugins([], byway_style)
    assert isinstance(seen[0], PluginRegistry) and isinstance(seen[0], list)
    assert [p.plugin_id for p in found] == ["mine"]

    async def by_framework_async(registry: Any) -> None:
        registry.register_bundle(Mine())
        registry.register_bundle(Plugin(PluginManifest(plugin_id="first", priority=9)))
        registry.apply_default_hook_timeout(2.5)
        assert [p.plugin_id for p in registry.get_active_plugins()] == ["first", "mine"]

    found = discover_plugins([], by_framework_async)
    assert [(p.plugin_id, p.hook_timeout_seconds) for p in found] == [("mine", 2.5), ("first", 2.5)]


async def test_run_worker_takes_a_configurator_and_a_plugin_dir(
    tmp_path: Path, client: GatewayClient, settings: RedisSettings
) -> None:
    """The README's loading lines as a user's script runs them, in a worker process: the
    directory's WeatherPlugin and a configurator's plugin, which sees its configs."""
    directory = tmp_path / "my_plugins"
    directory.mkdir()
    (directory / "weather.py").write_text(WEATHER)
    out = tmp_path / "out.jsonl"
    script = tmp_path / "my_agent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json
            from byway import GatewayWorker, Plugin, PluginManifest, run_worker

            def note(value):
                with open({str(out)!r}, "a") as f:
                    f.write(json.dumps(value) + "\\n")

            class Probe(Plugin):
                def __init__(self):
                    super().__init__(PluginManifest(plugin_id="probe", priority=-1))
                async def register_agent_configs(self, ctx):
                    note([c.agent_id for c in ctx.list_agent_configs()])
                async def on_worker_startup(self):
                    note("started")
                async def on_worker_shutdown(self):
                    note("stopped")

            class MyAgent(GatewayWorker):
                def get_agent_types(self):
                    return ["my_agent"]
                async def process_command(self, command, context):
                    return "ok"

            def setup(registry):
                registry.register_bundle(Probe())

            run_worker(MyAgent, worker_id="compat-w", plugin_configurator=setup,
                       plugin_dir={str(directory)!r}, namespace={settings.namespace!r},
                       key_schema={settings.keys.schema!r})
            """
        )
    )
    from byway.app import worker_env

    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped by its PID
        [sys.executable, str(script)], env=worker_env(settings)
    )
    try:
        await wait_online(client, "my_agent")
        await _until(lambda: out.exists() and "started" in out.read_text())
    finally:
        assert stop_process(proc) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [["weather_agent"], "started", "stopped"]
