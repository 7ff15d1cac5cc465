"""by-framework's README examples, ``by_framework`` renamed to ``byway``, run end to end.

Each example is a file in ``tests/compat/readme/`` as the README prints it; a test copies
it to a temporary directory, points the README's ``localhost:6379`` at the test's Redis
(the only other edit), runs its workers as processes (``python my_agent.py``, ``python -m
byway --worker-class ...``) and checks what a user would see: the output, the session's
events, the execution records. The README's code names no key namespace, so the processes
get the test's through ``BYWAY_NAMESPACE``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from byway import Event, GatewayClient, RedisSettings
from tests.conftest import ROOT, stop_process, until_status, wait_online

pytestmark = [pytest.mark.compat, pytest.mark.redis, pytest.mark.timeout(180)]

EXAMPLES = Path(__file__).with_name("readme")
STEP_TIMEOUT = 30.0


@dataclass
class Readme:
    """The README's examples in ``workdir``, on the test's Redis and namespace."""

    settings: RedisSettings
    host: str
    port: int
    db: int
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        return {
            **os.environ,
            "BYWAY_REDIS_URL": self.settings.resolved_url(),
            "BYWAY_NAMESPACE": self.settings.namespace,
            "PYTHONPATH": path,
        }

    def copy(self, name: str) -> Path:
        """``name`` in the work directory, the README's Redis address pointed at the test's."""
        source = EXAMPLES / name
        target = self.workdir / name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
            return target
        text = source.read_text(encoding="utf-8")
        text = text.replace('host="localhost", port=6379', f'host="{self.host}", port={self.port}')
        target.write_text(text, encoding="utf-8")
        return target

    def spawn(self, *args: str, log: str | None = None) -> subprocess.Popen[bytes]:
        """``python *args`` in the work directory (its output to ``log`` when named)."""
        with open(self.workdir / (log or os.devnull), "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, *args],
                cwd=self.workdir,
                env=self.env,
                stdout=out if log else None,
                stderr=subprocess.STDOUT if log else None,
            )
        self.processes.append(proc)
        return proc

    def run(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, f"python {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
        return out.stdout

    def stop(self) -> None:
        for proc in self.processes:
            stop_process(proc)


@pytest.fixture
def readme(
    redis_url: str, settings: RedisSettings, redis: object, tmp_path: Path
) -> Iterator[Readme]:
    """(``redis``: the conftest fixture that deletes the namespace's keys afterwards.)"""
    parts = urlsplit(redis_url)
    path = parts.path.strip("/")
    if parts.scheme != "redis" or parts.username or parts.password or not parts.hostname:
        pytest.skip(f"the README's init_redis takes host and port: cannot use {redis_url}")
    if parts.query or (path and not path.isdigit()):
        pytest.skip(f"the README's init_redis takes host, port and db: cannot use {redis_url}")
    examples = Readme(settings, parts.hostname, parts.port or 6379, int(path or 0), tmp_path)
    try:
        yield examples
    finally:
        examples.stop()


async def _events(client: GatewayClient, session: str, message_id: str) -> list[Event]:
    """The session's events up to the end of ``message_id``."""

    async def read() -> list[Event]:
        return [e async for e in client.stream(session, until_message_id=message_id)]

    return await asyncio.wait_for(read(), STEP_TIMEOUT)


def _chunks(events: list[Event]) -> str:
    return "".join(str(e.data.get("content", "")) for e in events if e.kind == "chunk")


# -- Quick start ------------------------------------------------------------------------------


async def test_quick_start_worker_and_byai_client(readme: Readme, client: GatewayClient) -> None:
    agent = readme.copy("my_agent.py")
    sender = readme.copy("send_task.py")
    readme.spawn(agent.name)
    await wait_online(client, "my_agent", timeout=STEP_TIMEOUT)

    out = readme.run(sender.name)

    match = re.search(r"Sent: (\S+)", out)
    assert match, out
    message_id = match.group(1)
    events = await _events(client, "demo-session", message_id)
    assert _chunks(events) == "Hello from your agent!"
    record = await until_status(client, "demo-session", message_id, "COMPLETED")
    assert record.worker_id == "worker-01"


async def test_deployment_line_python_m_byway(readme: Readme, client: GatewayClient) -> None:
    """``python -m byway --worker-class my_agent.MyAgent --worker-id worker-01
    --redis-host localhost`` (README, Deployment), on the test's Redis."""
    readme.copy("my_agent.py")
    readme.spawn(
        "-m", "byway", "--worker-class", "my_agent.MyAgent", "--worker-id", "worker-01",
        "--redis-host", readme.host, "--redis-port", str(readme.port),
        "--redis-db", str(readme.db),
    )  # fmt: skip
    await wait_online(client, "my_agent", timeout=STEP_TIMEOUT)
    sent = await client.send_message("my_agent", "deploy-session", "Hello!")
    events = await _events(client, "deploy-session", sent.message_id)
    assert _chunks(events) == "Hello from your agent!"
    workers = {w.worker_id for w in await client.registry.list_workers()}
    assert "worker-01" in workers


async def test_byai_client_sends_a_bai_ying_message_a_byai_worker_decodes(
    readme: Readme, client: GatewayClient
) -> None:
    readme.spawn(readme.copy("chat_agent.py").name)
    await wait_online(client, "chat_agent", timeout=STEP_TIMEOUT)

    out = readme.run(readme.copy("byai_example.py").name)

    message_id = out.split("Sent: ", 1)[1].strip()
    events = await _events(client, "sess-001", message_id)
    assert _chunks(events) == "user: Hello"
    [final] = [e for e in events if e.kind == "final"]
    assert final.data["content"] == "hi, user"


# -- GatewayClient: user_code, metadata, an interceptor, cancel with a reason -----------------


async def test_gateway_client_metadata_interceptor_and_cancel(
    readme: Readme, client: GatewayClient, settings: RedisSettings
) -> None:
    agent = readme.copy("slow_agent.py")
    example = readme.copy("client_example.py")
    readme.spawn(agent.name)
    await wait_online(client, "my_agent", timeout=STEP_TIMEOUT)

    out = readme.run(example.name)

    message_id = out.split("Sent and cancelled: ", 1)[1].strip()
    record = await until_status(client, "sess-001", message_id, "CANCELLED")
    assert record.user_code == "user-123"
    assert record.cancel_reason == "User requested"
    # what went on the wire: the metadata and the interceptor's token in the header
    entries = await client.redis.xrange(settings.keys.agent_stream("my_agent"))
    sent = [json.loads(fields[b"data"]) for _, fields in entries]
    asks = [c for c in sent if c["header"]["message_id"] == message_id]
    assert len(asks) == 1
    header = asks[0]["header"]
    assert header["user_code"] == "user-123"
    assert header["metadata"]["priority"] == "high"
    assert header["metadata"]["auth_token"] == "..."


# -- AgentContext, inter-agent calls, scatter-gather, user in the loop ------------------------


async def test_orchestration_across_two_worker_processes(
    readme: Readme, client: GatewayClient
) -> None:
    readme.spawn(readme.copy("orchestrator.py").name)
    readme.spawn(readme.copy("specialists.py").name)
    await wait_online(client, "orchestrator", timeout=STEP_TIMEOUT)
    await wait_online(client, "translator", timeout=STEP_TIMEOUT)

    sent = await client.send_message("orchestrator", "orch-session", "start")
    question: Event | None = None
    deadline = time.monotonic() + STEP_TIMEOUT
    seen: list[Event] = []
    async for event in client.stream("orch-session", idle_timeout=STEP_TIMEOUT):
        seen.append(event)
        if event.kind == "ask_user":
            question = event
            break
        assert time.monotonic() < deadline
    assert question is not None, [e.data for e in seen]
    assert question.data.get("prompt") == "What is the target deployment environment?"
    text = _chunks(seen)
    assert text.startswith("Step 1 complete\ntranslator said: translated: Hello world\n")
    assert "researcher done: Find papers\n" in text
    assert "analyst done: Summarize findings\n" in text
    kinds = [e.kind for e in seen]
    assert "state" in kinds and "artifact" in kinds

    await client.resume("orch-session", sent.message_id, "production")
    events = await _events(client, "orch-session", sent.message_id)
    assert _chunks(events).endswith("You said: production")
    await until_status(client, "orch-session", sent.message_id, "COMPLETED")


# -- Plugins, loaded three ways, and JSON logs ---------------------------------------------------


def _json_lines(text: str) -> list[dict[str, object]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


@pytest.mark.parametrize("mode", ["list", "configurator", "directory"])
async def test_the_weather_plugin_loaded_by_list_configurator_and_directory(
    readme: Readme, client: GatewayClient, mode: str
) -> None:
    readme.copy("my_plugins")
    readme.copy("weather_worker.py")
    worker = readme.spawn("weather_worker.py", mode, log="worker.log")
    await wait_online(client, "weather_agent", timeout=STEP_TIMEOUT)

    sent = await client.send_message("weather_agent", f"weather-{mode}", "Paris")
    final = await client.wait_for_final(f"weather-{mode}", sent.message_id, timeout=STEP_TIMEOUT)
    assert final.data["content"] == "You are a weather assistant."
    assert final.data["reply_data"] == {"city": "Paris", "temp": 22, "condition": "sunny"}
    assert stop_process(worker) == 0

    lines = _json_lines((readme.workdir / "worker.log").read_text())
    # setup_logging(use_json=True): the handler's line carries the task's ids
    [mine] = [line for line in lines if line["message"] == "weather for Paris"]
    assert mine["level"] == "INFO" and mine["logger"] == "weather_worker"
    assert mine["session_id"] == f"weather-{mode}" and mine["message_id"] == sent.message_id
    assert str(mine["timestamp"]).endswith("Z")
    # the README's hooks ran, each once, none failed (the worker's hook counts at shutdown)
    [stats] = [line for line in lines if str(line["message"]).startswith("plugin weather:")]
    for hook in ("on_worker_startup", "on_task_start", "on_task_complete"):
        assert f"{hook} 1 ok/0 failed/0 timed out" in str(stats["message"]), stats


# -- Service discovery -------------------------------------------------------------------------


async def test_service_discovery_round_robin_over_two_instances(readme: Readme) -> None:
    """Two instances of a service register (ServiceRegistry); DiscoveryHttpClient's calls
    alternate between them, and go on through the survivor when one is killed."""
    readme.copy("greeter.py")
    caller = readme.copy("call_greeter.py")
    greeters = {name: readme.spawn("greeter.py", name, log=f"{name}.log") for name in "AB"}
    deadline = time.monotonic() + STEP_TIMEOUT
    for name, proc in greeters.items():
        log = readme.workdir / f"{name}.log"
        while f"registered {name}" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"greeter {name} did not register"
            await asyncio.sleep(0.05)

    lines = readme.run(caller.name).split()
    assert lines[:2] == ["instances:", "2"]
    calls = lines[2:]
    assert sorted(calls[:2]) == ["A", "B"] and calls[2:] == calls[:2]  # round-robin

    # its lease (three 5 s heartbeats) is still live: calls to it fail and move on
    greeters["A"].kill()
    greeters["A"].wait()
    lines = readme.run(caller.name).split()
    assert lines[2:] == ["B"] * 4
