"""Wire compatibility with the by-framework 0.2.1 SDK, in both directions.

1. by-framework's ``GatewayClient`` (FAIL_FAST: it reads Byway's lease to decide the
   worker is online) sends an AskAgent that a Byway worker process runs; Byway's client
   reads the events and the execution record by-framework started.
2. Byway's ``GatewayClient`` sends an AskAgent that by-framework's ``run_worker`` runs;
   Byway's client reads by-framework's events.

by-framework needs Python 3.12 and hard-codes the key prefix ``byai_gateway:``, so its side
runs in a separate venv (``tests/compat/by_framework_peer.py``) and these tests use Byway's
default namespace with random agent types, sessions and worker ids. They must not use the
``redis``/``client`` fixtures (their cleanup deletes ``<namespace>:*``); the ``byai``
fixture deletes exactly the keys these ids name.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from byway import Event, EventType, GatewayClient, RedisSettings
from tests.conftest import spawn_worker, stop_process

pytestmark = [
    pytest.mark.compat,
    pytest.mark.redis,
    # the first run creates the venv and pip-installs by-framework; later runs take seconds
    pytest.mark.timeout(420),
]

NS = "byai_gateway"  # by-framework's fixed prefix
PEER = Path(__file__).with_name("by_framework_peer.py")
STEP_TIMEOUT = 20.0  # seconds for any one wait below
T = TypeVar("T")


# -- Redis, and exactly the keys these tests create ------------------------------------------


@dataclass
class ByaiKeys:
    """The random ids a test uses; the fixture deletes every key they name afterwards."""

    settings: RedisSettings
    redis: aioredis.Redis
    host: str
    port: int
    db: int
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    agent_types: set[str] = field(default_factory=set)
    worker_ids: set[str] = field(default_factory=set)
    session_ids: set[str] = field(default_factory=set)

    def agent_type(self, name: str) -> str:
        value = f"bwcompat_{self.tag}_{name}"
        self.agent_types.add(value)
        return value

    def worker_id(self, name: str) -> str:
        value = f"bwcompat-{self.tag}-{name}"
        self.worker_ids.add(value)
        return value

    def session_id(self, name: str) -> str:
        value = f"bwcompat-{self.tag}-{name}"
        self.session_ids.add(value)
        return value

    def peer_args(self) -> list[str]:
        return ["--host", self.host, "--port", str(self.port), "--db", str(self.db)]

    async def cleanup(self) -> None:
        keys: set[str] = set()
        for t in self.agent_types:
            keys |= {f"{NS}:ctrl:agent_type:{t}", f"{NS}:registry:agent_type:workers:{t}"}
        for w in self.worker_ids:
            keys |= {f"{NS}:ctrl:worker:{w}", f"{NS}:registry:worker:online:{w}"}
            keys |= {
                f"{NS}:registry:worker:{kind}:{w}"
                for kind in (
                    "agent_types",
                    "status",
                    "executions",
                    "active_execution_index",
                    "active_snapshots",
                    "history_snapshots",
                )
            }
        for s in self.session_ids:
            registry = f"{NS}:session:{s}:registry"
            for name in await self.redis.hkeys(registry):
                if name.startswith(b"exec:"):
                    keys.add(f"{NS}:agent_configs_snapshot:{name[5:].decode()}")
            keys |= {registry, f"{NS}:session:{s}:data_stream"}
        if keys:
            await self.redis.delete(*sorted(keys))
        if self.worker_ids:
            await self.redis.srem(f"{NS}:registry:workers", *sorted(self.worker_ids))
        # entries a Byway worker dead-lettered from our streams (none expected)
        ours = {k for k in keys if ":ctrl:" in k}
        dead = f"{NS}:dead_letter"
        mine = [
            eid
            for eid, fields in await self.redis.xrange(dead)
            if _dead_letter_stream(fields) in ours
        ]
        if mine:
            await self.redis.xdel(dead, *mine)
            if await self.redis.xlen(dead) == 0:
                await self.redis.delete(dead)


def _dead_letter_stream(fields: dict[bytes, bytes]) -> str:
    try:
        return str(json.loads(fields.get(b"data", b"{}")).get("stream", ""))
    except (ValueError, AttributeError):
        return ""


@pytest.fixture
async def byai(redis_url: str) -> AsyncIterator[ByaiKeys]:
    parts = urlsplit(redis_url)
    if parts.scheme != "redis" or parts.username or parts.password or not parts.hostname:
        pytest.skip(f"by-framework's init_redis takes host/port: cannot use {redis_url}")
    path = parts.path.strip("/")
    if parts.query or (path and not path.isdigit()):
        pytest.skip(f"by-framework's init_redis takes host/port/db: cannot use {redis_url}")
    settings = RedisSettings(url=redis_url, namespace=NS)
    redis = settings.client()
    keys = ByaiKeys(settings, redis, parts.hostname, parts.port or 6379, int(path or 0))
    try:
        yield keys
    finally:
        await keys.cleanup()
        await redis.aclose()


# -- helpers -----------------------------------------------------------------------------------


async def _wait_registered(
    redis: aioredis.Redis,
    agent_type: str,
    worker_id: str,
    proc: subprocess.Popen[bytes],
    log: Path | None = None,
    *,
    heartbeat: bool = False,
) -> None:
    """Until ``worker_id`` holds its lease and is a member of ``agent_type``'s set (and, with
    ``heartbeat``, the lease JSON has ``last_seen`` > 0: by-framework's "online")."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        assert proc.poll() is None, f"worker exited with {proc.returncode}{_tail(log)}"
        raw = await redis.get(f"{NS}:registry:worker:online:{worker_id}")
        member = await redis.sismember(f"{NS}:registry:agent_type:workers:{agent_type}", worker_id)
        if raw and member and (not heartbeat or int(json.loads(raw).get("last_seen") or 0) > 0):
            return
        assert time.monotonic() < deadline, f"{worker_id} not online in {STEP_TIMEOUT}s{_tail(log)}"
        await asyncio.sleep(0.05)


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return "\n--- worker log (tail) ---\n" + log.read_text(errors="replace")[-3000:]


async def _peer(python: Path, *args: str) -> Any:
    """Run one by_framework_peer.py command; its last stdout line is JSON."""
    done = await asyncio.to_thread(
        subprocess.run,
        [str(python), str(PEER), *args],
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
    )
    assert done.returncode == 0, f"peer {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


async def _read(client: GatewayClient, session_id: str, message_id: str) -> list[Event]:
    """The session's events up to ``message_id``'s appStreamResponse."""

    async def read() -> list[Event]:
        return [
            e async for e in client.stream(session_id, until_message_id=message_id, block_ms=500)
        ]

    return await asyncio.wait_for(read(), STEP_TIMEOUT)


async def _pending(redis: aioredis.Redis, stream: str) -> int:
    return int((await redis.xpending(stream, "agent_engines"))["pending"])


async def _eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """``probe()`` until ``done`` holds of it or STEP_TIMEOUT passes; the last value."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        value = await probe()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


def _spawn_peer_worker(
    python: Path, byai: ByaiKeys, agent_type: str, worker_id: str, tmp_path: Path, log: Path
) -> subprocess.Popen[bytes]:
    """Start by-framework's ``run_worker`` (by_framework_peer.py) in its own process."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                str(python),
                str(PEER),
                "worker",
                *byai.peer_args(),
                "--agent-type",
                agent_type,
                "--worker-id",
                worker_id,
                "--workspace",
                str(tmp_path / "workspace"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop_peer_worker(proc: subprocess.Popen[bytes]) -> int:
    """SIGINT (by-framework's graceful shutdown), then terminate, then kill; by PID."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            stop_process(proc, timeout=5)
    return proc.returncode


# -- 1. by-framework client -> Byway worker ---------------------------------------------------


async def test_by_framework_client_ask_runs_on_a_byway_worker(
    byai: ByaiKeys, by_framework_python: Path
) -> None:
    agent_type = byai.agent_type("echo")
    worker_id = byai.worker_id("byway")
    session = byai.session_id("s1")
    text = "compat from by framework"
    send = [
        "send",
        *byai.peer_args(),
        "--agent-type",
        agent_type,
        "--session",
        session,
        "--content",
        text,
    ]

    # FAIL_FAST really checks: with no worker, by-framework refuses and writes nothing
    refused = await _peer(by_framework_python, *send)
    assert refused["success"] is False and refused["error_code"] == "AGENT_TYPE_UNAVAILABLE", (
        refused
    )
    assert not await byai.redis.exists(
        f"{NS}:ctrl:agent_type:{agent_type}", f"{NS}:session:{session}:registry"
    )

    worker = spawn_worker(
        "tests.agents.basic:echo", byai.settings, "--agent-type", agent_type, worker_id=worker_id
    )
    try:
        async with GatewayClient(settings=byai.settings) as client:
            # (not checking last_seen here: by-framework's FAIL_FAST below judges Byway's lease)
            await _wait_registered(byai.redis, agent_type, worker_id, worker)
            sent = await _peer(by_framework_python, *send)
            assert sent["success"] is True and sent["status"] == "QUEUED", sent
            assert sent["target_worker_id"] == ""  # routed to the agent type's stream
            message_id = sent["message_id"]
            events = await _read(client, session, message_id)
            record = await client.registry.get_execution_by_message(session, message_id)
            pending = await _eventually(
                lambda: _pending(byai.redis, f"{NS}:ctrl:agent_type:{agent_type}"),
                lambda n: n == 0,
            )
    finally:
        code = stop_process(worker)
    by_framework_view = await _peer(
        by_framework_python,
        "record",
        *byai.peer_args(),
        "--session",
        session,
        "--message-id",
        message_id,
    )

    assert [e.message_id for e in events] == [message_id] * len(events)
    assert {(e.session_id, e.trace_id, e.source_agent_type) for e in events} == {
        (session, sent["trace_id"], agent_type)
    }
    chunks = [e.data["content"] for e in events if e.event_type == EventType.ANSWER_DELTA]
    assert chunks == [w + " " for w in text.split()]
    kinds = Counter(e.event_type for e in events)
    assert kinds == {
        EventType.ANSWER_DELTA: len(chunks),
        EventType.FINAL_ANSWER: 1,
        EventType.APP_STREAM_RESPONSE: 1,
    }, kinds
    final = next(e for e in events if e.event_type == EventType.FINAL_ANSWER)
    assert final.data["status"] == "COMPLETED" and final.data["content"] == text
    assert final.data["reply_data"]["worker_id"] == worker_id
    assert final.data["reply_data"]["pid"] == worker.pid
    assert events[-1].event_type == EventType.APP_STREAM_RESPONSE  # a root task: it ends the stream
    assert events[-1].data["status"] == "COMPLETED"

    # the record is the one by-framework wrote (its exec-<8 hex> id, source "client"), run on
    assert record is not None
    assert record.execution_id == final.data["execution_id"]
    assert record.execution_id.startswith("exec-") and len(record.execution_id) == 13
    assert record.source_agent_type == "client"
    assert record.states == ["QUEUED", "RUNNING", "COMPLETED"]
    assert record.status == "COMPLETED" and record.worker_id == worker_id
    assert record.started_at >= record.created_at > 0 and record.finished_at >= record.started_at
    assert pending == 0  # acknowledged
    assert code == 0  # the Byway worker drained and exited cleanly
    # ...and by-framework's registry still reads the record Byway rewrote
    assert by_framework_view["execution_id"] == record.execution_id
    assert by_framework_view["status"] == "COMPLETED"
    assert [t["status"] for t in by_framework_view["timeline"]] == [
        "QUEUED",
        "RUNNING",
        "COMPLETED",
    ]


# -- 2. Byway client -> by-framework worker ---------------------------------------------------


async def test_byway_client_ask_runs_on_a_by_framework_worker(
    byai: ByaiKeys, by_framework_python: Path, tmp_path: Path
) -> None:
    agent_type = byai.agent_type("hello")
    worker_id = byai.worker_id("byf")
    session = byai.session_id("s2")
    log = tmp_path / "by_framework_worker.log"
    worker = _spawn_peer_worker(by_framework_python, byai, agent_type, worker_id, tmp_path, log)
    try:
        async with GatewayClient(settings=byai.settings) as client:
            await _wait_registered(byai.redis, agent_type, worker_id, worker, log, heartbeat=True)
            sent = await client.send_message(agent_type, session, "world")
            assert sent.success, sent.error
            events = await _read(client, session, sent.message_id)
            # by-framework writes the terminal record, then XACKs, after its end events
            record = await _eventually(
                lambda: client.registry.get_execution_by_message(session, sent.message_id),
                lambda r: r is not None and r.status == "COMPLETED",
            )
            pending = await _eventually(
                lambda: _pending(byai.redis, f"{NS}:ctrl:agent_type:{agent_type}"),
                lambda n: n == 0,
            )
    finally:
        _stop_peer_worker(worker)

    def content(event: Event) -> Any:
        return event.data["choices"][0]["delta"]["content"]

    assert [e.message_id for e in events] == [sent.message_id] * len(events), _tail(log)
    assert {(e.session_id, e.trace_id, e.source_agent_type) for e in events} == {
        (session, sent.trace_id, agent_type)
    }
    assert [e.event_type for e in events] == [
        EventType.ANSWER_DELTA,
        EventType.FINAL_ANSWER,
        EventType.APP_STREAM_RESPONSE,
    ], _tail(log)
    assert content(events[0]) == "hello "
    assert content(events[1]) == "hello world"  # the handler's return value
    assert content(events[2]) == ""
    assert events[1].data["orderId"] == sent.message_id

    # by-framework ran the execution Byway queued (same id), not a fresh one
    assert record is not None and record.status == "COMPLETED", record
    assert record.execution_id == sent.execution_id
    assert record.states == ["QUEUED", "RUNNING", "COMPLETED"]
    assert record.worker_id == worker_id
    assert pending == 0
