"""Plugins: discovery through entry points, hooks that fail or overrun, hot reload across
processes, agent-config snapshots, and one trace across a call between processes."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from byway import (
    AgentTaskResult,
    GatewayClient,
    Plugin,
    PluginError,
    PluginManager,
    PluginManifest,
    RedisSettings,
)
from byway.plugins import discover_plugins
from byway.testing import PluginSuite
from tests.agents.basic import echo
from tests.conftest import running, spawn_worker, stop_process, wait_online

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


# -- discovery -----------------------------------------------------------------------------


def test_an_installed_plugin_is_found_through_its_entry_point(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BYWAY_TEST_SAMPLE_PLUGIN", "redis://127.0.0.1:1")
    with caplog.at_level(logging.INFO, logger="byway.plugins"):
        found = [p.manifest.id for p in discover_plugins()]
    assert "sample" in found
    # the others declined (their variables are unset) or lack a dependency: one line each
    assert "prompts" not in found and "broken" not in found
    assert any("plugin broken declined" in r.message for r in caplog.records)
    missing = [r.message for r in caplog.records if "needs_missing" in r.message]
    assert missing == [
        "plugin needs_missing skipped: optional dependency byway_no_such_dependency "
        "is not installed"
    ]


@pytest.mark.parametrize("value", ["sample", "broken,sample", "*"])
def test_the_disable_variable_turns_plugins_off(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("BYWAY_TEST_SAMPLE_PLUGIN", "redis://127.0.0.1:1")
    monkeypatch.setenv("BYWAY_DISABLED_PLUGINS", value)
    assert "sample" not in [p.manifest.id for p in discover_plugins()]


def test_a_broken_plugin_fails_loudly_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYWAY_TEST_BROKEN_PLUGIN", "1")
    with pytest.raises(PluginError, match=r"plugin broken: constructor failed: RuntimeError"):
        discover_plugins()


def test_a_broken_plugin_stops_the_worker_process_with_its_name(
    monkeypatch: pytest.MonkeyPatch, settings: RedisSettings
) -> None:
    from byway.app import worker_command, worker_env

    monkeypatch.setenv("BYWAY_TEST_BROKEN_PLUGIN", "1")
    done = subprocess.run(
        worker_command("tests.agents.basic:echo", settings),
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode != 0
    assert "plugin broken: constructor failed: RuntimeError: this plugin is broken" in (done.stderr)


def test_an_entry_point_whose_own_module_is_missing_fails_loudly() -> None:
    from importlib.metadata import EntryPoint

    from byway.plugins import _load_entry_point

    typo = EntryPoint("typo", "byway_test_plugins.no_such_module:Plugin", "byway.plugins")
    with pytest.raises(PluginError, match=r"plugin typo .* does not exist"):
        _load_entry_point(typo)


def test_an_explicit_list_replaces_discovery_in_priority_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BYWAY_TEST_BROKEN_PLUGIN", "1")  # not discovered: not loaded

    class Late(Plugin):
        manifest = PluginManifest("late", priority=200)

    class Early(Plugin):
        manifest = PluginManifest("early", priority=1)

    class Same(Plugin):
        manifest = PluginManifest("alpha", priority=200)

    plugins = discover_plugins([Late, Early(), Same])
    assert [p.manifest.id for p in PluginManager(plugins).plugins] == ["early", "alpha", "late"]


def test_a_plugin_dir_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(
        "from byway import Plugin, PluginManifest\n"
        "class Mine(Plugin):\n"
        "    manifest = PluginManifest('from-dir')\n"
    )
    found = discover_plugins([], None, str(tmp_path))
    assert [p.manifest.id for p in found] == ["from-dir"]


async def test_byway_worker_serves_an_object_through_an_installed_adapter(
    client: GatewayClient, settings: RedisSettings
) -> None:
    from byway import load_worker

    worker = load_worker("byway_test_plugins:SHOUTER")
    assert worker.get_agent_types() == ["shouter"]
    with pytest.raises(Exception, match="expected a GatewayWorker subclass"):
        load_worker("byway_test_plugins:Shouter")  # the class itself: no adapter takes it
    proc = spawn_worker("byway_test_plugins:SHOUTER", settings)
    try:
        await wait_online(client, "shouter")
        sent = await client.send_message("shouter", "adapter-s", "quiet please")
        final = await client.wait_for_final("adapter-s", sent.message_id, timeout=20)
    finally:
        stop_process(proc)
    assert final.data["content"] == "QUIET PLEASE"


# -- hooks ---------------------------------------------------------------------------------


class Slow(Plugin):
    manifest = PluginManifest("slow", priority=1)

    async def on_task_start(self, ctx: Any) -> None:
        await asyncio.sleep(30)


class Raising(Plugin):
    manifest = PluginManifest("raising", priority=2)

    async def on_task_complete(self, ctx: Any, result: AgentTaskResult) -> None:
        raise ValueError("hook bug")


class Cancelling(Plugin):
    manifest = PluginManifest("cancelling", priority=2)

    async def on_task_start(self, ctx: Any) -> None:
        raise asyncio.CancelledError  # a hook bug that looks like a cancellation


class Recording(Plugin):
    manifest = PluginManifest("recording", priority=3)

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def on_task_start(self, ctx: Any) -> None:
        self.seen.append(("start", ctx.current_agent_id))

    async def on_task_complete(self, ctx: Any, result: AgentTaskResult) -> None:
        self.seen.append(("complete", str(result.content)))

    async def on_call_agent_start(self, ctx: Any, command: Any) -> None:
        self.seen.append(("call", command.header.target_agent_type))

    async def on_call_agent_complete(self, ctx: Any, reply: Any) -> None:
        self.seen.append(("reply", str(reply.content)))


async def test_a_slow_or_failing_hook_neither_stalls_nor_changes_the_task(
    client: GatewayClient, settings: RedisSettings
) -> None:
    recording = Recording()
    plugins = [Slow(), Raising(), Cancelling(), recording]
    async with running(echo, settings, plugins=plugins, plugin_hook_timeout_seconds=0.5) as r:
        started = time.monotonic()
        sent = await client.send_message("echo", "hooks-s", "hello hooks")
        final = await client.wait_for_final("hooks-s", sent.message_id, timeout=10)
        took = time.monotonic() - started
        await asyncio.sleep(0.1)  # the complete hooks run just after the end is written
        stats = r.plugins.summary()
    assert final.data["status"] == "COMPLETED" and final.data["content"] == "hello hooks"
    assert took < 0.5 + 2  # the slow hook costs its timeout, not its 30 s
    assert stats["slow"]["on_task_start"] == {"ok": 0, "error": 0, "timeout": 1}
    assert stats["raising"]["on_task_complete"] == {"ok": 0, "error": 1, "timeout": 0}
    assert stats["cancelling"]["on_task_start"] == {"ok": 0, "error": 1, "timeout": 0}
    assert stats["recording"]["on_task_complete"]["ok"] == 1
    assert recording.seen == [("start", "echo"), ("complete", "hello hooks")]


async def test_call_hooks_see_the_call_and_the_reply(
    client: GatewayClient, settings: RedisSettings
) -> None:
    from tests.agents.plugged import callee, caller

    recording = Recording()
    async with (
        running(callee, settings, plugins=[]),
        running(caller, settings, plugins=[recording]),
    ):
        sent = await client.send_message("caller", "calls-s", "go")
        final = await client.wait_for_final("calls-s", sent.message_id, timeout=15)
    assert final.data["content"] == "callee said hi"
    assert recording.seen == [
        ("start", "caller"),
        ("call", "callee"),
        ("start", "caller"),
        ("reply", "hi"),
        ("complete", "callee said hi"),
    ]


class TestPluginsOfThisRepoConform(PluginSuite):
    @pytest.fixture(params=[Recording, Raising])
    def plugin(self, request: pytest.FixtureRequest) -> Plugin:
        return request.param()  # type: ignore[no-any-return]


# -- hot reload and agent-config snapshots -------------------------------------------------


async def _prompt_of(
    client: GatewayClient, session: str, worker_id: str | None = None
) -> tuple[str, str]:
    sent = await client.send_message("prompted", session, "which", target_worker_id=worker_id)
    final = await client.wait_for_final(session, sent.message_id, timeout=20)
    return final.data["content"], final.data["reply_data"]["worker_id"]


async def test_reload_reaches_every_worker_and_outlives_a_restart(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    client: GatewayClient,
    settings: RedisSettings,
) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("be brief")
    monkeypatch.setenv("BYWAY_TEST_PROMPT_FILE", str(prompt))
    ids = ["reload-a", "reload-b"]
    procs = {w: spawn_worker("tests.agents.plugged:prompted", settings, worker_id=w) for w in ids}
    try:
        await wait_online(client, "prompted", count=2)
        for w in ids:
            assert await _prompt_of(client, f"before-{w}", w) == ("be brief", w)
        # a question pending across the reload keeps the config it started with
        asking = await client.send_message("prompted", "pending-s", "ask")
        await _until_status(client, "pending-s", asking.message_id, "WAITING_USER")

        prompt.write_text("be thorough")
        acks = await client.reload_plugins(reason="new prompt", timeout=20)
        assert sorted(a.worker_id for a in acks) == ids
        assert all(a.status == "ok" for a in acks), acks
        assert all(a.version_before != a.version_after for a in acks)
        assert len({a.version_after for a in acks}) == 1
        for w in ids:
            assert await _prompt_of(client, f"after-{w}", w) == ("be thorough", w)
        cli = await asyncio.to_thread(
            subprocess.run,
            _byway(settings, "reload", "--json", "--timeout", "20"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert sorted(a["worker_id"] for a in json.loads(cli.stdout)) == ids

        await client.resume("pending-s", asking.message_id, "yes")
        answer = await client.wait_for_final("pending-s", asking.message_id, timeout=20)
        assert answer.data["content"] == "be brief"

        assert stop_process(procs.pop("reload-a")) == 0
        procs["reload-a"] = spawn_worker(
            "tests.agents.plugged:prompted", settings, worker_id="reload-a"
        )
        await wait_online(client, "prompted", count=2)
        assert await _prompt_of(client, "restarted", "reload-a") == ("be thorough", "reload-a")

        # a reload whose config does not build leaves the last good one in place
        prompt.write_text("broken")
        acks = await client.reload_plugins(timeout=20)
        assert sorted(a.status for a in acks) == ["error", "error"]
        assert all("ValueError" in a.error for a in acks)
        assert await _prompt_of(client, "kept", "reload-b") == ("be thorough", "reload-b")
        # ... and a worker that starts now starts from it
        assert stop_process(procs.pop("reload-a")) == 0
        procs["reload-a"] = spawn_worker(
            "tests.agents.plugged:prompted", settings, worker_id="reload-a"
        )
        await wait_online(client, "prompted", count=2)
        assert await _prompt_of(client, "fallback", "reload-a") == ("be thorough", "reload-a")
    finally:
        for proc in procs.values():
            stop_process(proc)


async def _until_status(client: GatewayClient, session: str, message_id: str, status: str) -> None:
    for _ in range(400):
        record = await client.registry.get_execution_by_message(session, message_id)
        if record and record.status == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{message_id} never reached {status}")


# -- tracing -------------------------------------------------------------------------------


async def test_a_call_between_processes_is_one_trace_with_nested_spans(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    client: GatewayClient,
    settings: RedisSettings,
) -> None:
    monkeypatch.setenv("BYWAY_TEST_SPAN_DIR", str(tmp_path))
    procs: list[subprocess.Popen[bytes]] = [
        spawn_worker("tests.agents.plugged:caller", settings),
        spawn_worker("tests.agents.plugged:callee", settings),
    ]
    try:
        await wait_online(client, "caller")
        await wait_online(client, "callee")
        sent = await client.send_message("caller", "trace-s", "go")
        final = await client.wait_for_final("trace-s", sent.message_id, timeout=20)
        assert final.data["content"] == "callee said hi"
    finally:
        for proc in procs:
            assert stop_process(proc) == 0  # a clean stop writes the spans
    spans = _read_spans(tmp_path)
    by_name = {s["name"]: s for s in spans}
    task_a, call, task_b, resume_a = (
        by_name["byway.task caller"],
        by_name["byway.call callee"],
        by_name["byway.task callee"],
        by_name["byway.resume caller"],
    )
    assert len({s["trace_id"] for s in spans}) == 1  # one trace across both processes
    assert call["parent_id"] == task_a["span_id"]
    assert task_b["parent_id"] == call["span_id"]  # B's task nests under A's call
    assert resume_a["parent_id"] == task_a["span_id"]  # A's resume continues its first run
    assert task_a["parent_id"] == ""
    assert task_b["attributes"]["byway.session_id"] == "trace-s"


async def test_hooks_run_in_worker_processes_from_an_installed_plugin(
    monkeypatch: pytest.MonkeyPatch,
    client: GatewayClient,
    settings: RedisSettings,
    redis_url: str,
    redis: aioredis.Redis,
    namespace: str,
) -> None:
    if redis_url.startswith("redis+cluster"):
        pytest.skip("the sample plugin counts on a standalone Redis")
    key = f"{namespace}:sample-counts"
    monkeypatch.setenv("BYWAY_TEST_SAMPLE_PLUGIN", settings.resolved_url())
    monkeypatch.setenv("BYWAY_TEST_SAMPLE_KEY", key)
    proc = spawn_worker("tests.agents.basic:echo", settings)
    try:
        await wait_online(client, "echo")
        for i in range(3):
            sent = await client.send_message("echo", "sample-s", f"n{i}")
            await client.wait_for_final("sample-s", sent.message_id)
    finally:
        assert stop_process(proc) == 0
    counts = {k.decode(): int(v) for k, v in (await redis.hgetall(key)).items()}
    assert counts == {"on_task_start": 3, "on_task_complete": 3}


def _read_spans(directory: Path) -> list[dict[str, Any]]:
    return [s for f in sorted(directory.glob("*.json")) for s in json.loads(f.read_text())]


def _byway(settings: RedisSettings, *args: str) -> list[str]:
    import sys

    return [
        sys.executable, "-m", "byway", "--log-level", "WARNING", *args, "--redis-url",
        settings.resolved_url(), "--namespace", settings.namespace,
    ]  # fmt: skip
