"""End to end in one process: a real Redis, real runners, the client's view of it."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis

from byway import (
    AgentContext,
    AgentTaskResult,
    Command,
    ConfigurationError,
    Event,
    EventType,
    GatewayClient,
    NoOnlineWorkerError,
    RedisSettings,
    WorkerIdInUseError,
    agent,
)
from byway.protocol import encode_command
from tests.agents.basic import echo, slow
from tests.conftest import running

pytestmark = pytest.mark.redis


async def collect(
    client: GatewayClient, session: str, message_id: str, timeout: float = 15
) -> list[Event]:
    async def read() -> list[Event]:
        return [e async for e in client.stream(session, until_message_id=message_id)]

    return await asyncio.wait_for(read(), timeout)


def finals(events: list[Event], message_id: str) -> list[Event]:
    return [
        e for e in events if e.event_type == EventType.FINAL_ANSWER and e.message_id == message_id
    ]


def ends(events: list[Event], message_id: str) -> list[Event]:
    return [
        e
        for e in events
        if e.event_type == EventType.APP_STREAM_RESPONSE and e.message_id == message_id
    ]


async def test_chunks_stream_in_order_and_the_task_ends_exactly_once(
    client: GatewayClient, settings: RedisSettings
) -> None:
    async with running(echo, settings):
        sent = (await client.send_message("echo", "s1", "one two three four")).raise_for_status()
        events = await collect(client, "s1", sent.message_id)
    chunks = [e.data["content"] for e in events if e.event_type == EventType.ANSWER_DELTA]
    assert chunks == ["one ", "two ", "three ", "four "]
    [final] = finals(events, sent.message_id)
    [end] = ends(events, sent.message_id)
    assert events[-1] is end and events[-2] is final
    assert final.data["status"] == "COMPLETED" and final.data["content"] == "one two three four"
    assert final.data["execution_id"] == sent.execution_id == end.data["execution_id"]
    assert all(e.session_id == "s1" and e.trace_id == sent.trace_id for e in events)
    record = await client.registry.get_execution("s1", sent.execution_id)
    assert record is not None
    assert record.states == ["QUEUED", "RUNNING", "COMPLETED"]
    assert record.worker_id == echo.worker_id and record.finished_at >= record.started_at > 0


async def test_a_handler_exception_fails_the_task_with_its_type_and_message(
    client: GatewayClient, settings: RedisSettings
) -> None:
    @agent("flaky")
    async def flaky(command: Command, context: AgentContext) -> str:
        if command.content == "boom":  # type: ignore[union-attr]
            raise KeyError("no such customer")
        return "fine"

    async with running(flaky, settings):
        bad = await client.send_message("flaky", "s2", "boom")
        events = await collect(client, "s2", bad.message_id)
        good = await client.send_message("flaky", "s2", "ok")
        later = await collect(client, "s2", good.message_id)
    [final] = finals(events, bad.message_id)
    assert final.data["status"] == "FAILED"
    assert final.data["error"] == {"type": "KeyError", "message": "'no such customer'"}
    assert len(ends(events, bad.message_id)) == 1
    assert finals(later, good.message_id)[0].data["status"] == "COMPLETED"  # worker survived
    record = await client.registry.get_execution("s2", bad.execution_id)
    assert record and record.status == "FAILED" and record.result
    assert record.result["error"]["type"] == "KeyError"


async def test_a_result_that_is_not_json_fails_with_a_clear_error(
    client: GatewayClient, settings: RedisSettings
) -> None:
    @agent("odd")
    async def odd(command: Command, context: AgentContext) -> object:
        return {"reply_data": object()}

    async with running(odd, settings):
        sent = await client.send_message("odd", "s", "x")
        [final] = finals(await collect(client, "s", sent.message_id), sent.message_id)
    assert final.data["status"] == "FAILED"
    assert "reply_data" in final.data["error"]["message"]


async def test_routing_requires_an_online_worker_unless_told_otherwise(
    client: GatewayClient, settings: RedisSettings
) -> None:
    refused = await client.send_message("echo", "s3", "hi")
    assert not refused.success and refused.error_code == "AGENT_TYPE_UNAVAILABLE"
    assert "echo" in refused.error
    with pytest.raises(NoOnlineWorkerError):
        refused.raise_for_status()
    queued = await client.send_message("echo", "s3", "queued early", require_online_worker=False)
    assert queued.success
    async with running(echo, settings):  # a worker that starts later picks it up
        events = await collect(client, "s3", queued.message_id)
    assert finals(events, queued.message_id)[0].data["content"] == "queued early"
    offline = await client.send_message("echo", "s3", "x", target_worker_id="nobody")
    assert not offline.success and offline.error_code == "WORKER_NOT_ONLINE"


async def test_target_worker_id_routes_to_that_worker(
    client: GatewayClient, settings: RedisSettings
) -> None:
    from byway.worker import FunctionWorker

    a = FunctionWorker(echo.handler, ["echo"], worker_id="worker-a")
    b = FunctionWorker(echo.handler, ["echo"], worker_id="worker-b")
    async with running(a, settings), running(b, settings):
        ids = []
        for _ in range(4):
            sent = await client.send_message("echo", "s4", "ping", target_worker_id="worker-b")
            [final] = finals(await collect(client, "s4", sent.message_id), sent.message_id)
            ids.append(final.data["reply_data"]["worker_id"])
    assert ids == ["worker-b"] * 4


async def test_stream_resumes_after_a_disconnect_without_loss_or_duplicates(
    client: GatewayClient, settings: RedisSettings
) -> None:
    words = " ".join(f"w{i}" for i in range(30))
    async with running(echo, settings):
        sent = await client.send_message("echo", "s5", words)
        first: list[Event] = []
        async for event in client.stream("s5"):
            first.append(event)
            if len(first) == 7:
                break  # the browser went away
        rest = await asyncio.wait_for(
            _drain(client.stream("s5", after=first[-1].id, until_message_id=sent.message_id)), 15
        )
    whole = await _drain(client.stream("s5", until_message_id=sent.message_id))
    assert [e.id for e in first + rest] == [e.id for e in whole]
    assert len({e.id for e in whole}) == len(whole) == 32


async def _drain(it):  # type: ignore[no-untyped-def]
    return [e async for e in it]


async def test_a_malformed_entry_is_dead_lettered_and_the_worker_goes_on(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    keys = settings.keys
    async with running(echo, settings):
        await redis.xadd(keys.agent_stream("echo"), {"data": b'{"action_type": "ASK_AGENT"}'})
        await redis.xadd(keys.agent_stream("echo"), {"data": b"not json"})
        sent = await client.send_message("echo", "s6", "still alive")
        events = await collect(client, "s6", sent.message_id)
    assert finals(events, sent.message_id)[0].data["status"] == "COMPLETED"
    dead = await redis.xrange(keys.dead_letters())
    reasons = [json.loads(fields[b"data"])["reason"] for _, fields in dead]
    assert len(reasons) == 2
    assert "header" in reasons[0] and "not JSON" in reasons[1]
    groups = await redis.xinfo_groups(keys.agent_stream("echo"))
    assert groups[0]["pending"] == 0  # nothing left pending


async def test_graceful_cancel_stops_a_cooperative_task(
    client: GatewayClient, settings: RedisSettings
) -> None:
    async with running(slow, settings, cancel_grace_seconds=5.0):
        sent = await client.send_message("slow", "s7", "30")
        await _until_state(client, "s7", sent.message_id, "RUNNING")
        await client.cancel_task(sent.message_id, "s7", reason="user pressed stop")
        events = await collect(client, "s7", sent.message_id, timeout=4)
    [final] = finals(events, sent.message_id)
    assert final.data["status"] == "CANCELLED"
    assert final.data["error"]["message"] == "user pressed stop"
    assert len(ends(events, sent.message_id)) == 1


async def test_a_task_that_ignores_cancel_is_stopped_after_the_grace_period(
    client: GatewayClient, settings: RedisSettings
) -> None:
    @agent("stubborn")
    async def stubborn(command: Command, context: AgentContext) -> str:
        await asyncio.sleep(60)
        return "never"

    async with running(stubborn, settings, cancel_grace_seconds=0.5):
        sent = await client.send_message("stubborn", "s8", "x")
        await _until_state(client, "s8", sent.message_id, "RUNNING")
        await client.cancel_task(sent.message_id, "s8")
        events = await collect(client, "s8", sent.message_id, timeout=5)
        forced = await client.send_message("stubborn", "s8", "y")
        await _until_state(client, "s8", forced.message_id, "RUNNING")
        await client.cancel_task(forced.message_id, "s8", cancel_mode="force")
        events2 = await collect(client, "s8", forced.message_id, timeout=2)
    assert finals(events, sent.message_id)[0].data["status"] == "CANCELLED"
    assert finals(events2, forced.message_id)[0].data["status"] == "CANCELLED"
    with pytest.raises(ConfigurationError, match="cancel_mode"):
        await client.cancel_task(forced.message_id, "s8", cancel_mode="gently")


async def _until_state(client: GatewayClient, session: str, message_id: str, state: str) -> None:
    for _ in range(200):
        record = await client.registry.get_execution_by_message(session, message_id)
        if record and record.status == state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{message_id} never reached {state}")


async def test_max_concurrency_is_respected_and_every_task_finishes(
    client: GatewayClient, settings: RedisSettings
) -> None:
    now_running = peak = 0

    @agent("busy")
    async def busy(command: Command, context: AgentContext) -> str:
        nonlocal now_running, peak
        now_running += 1
        peak = max(peak, now_running)
        await asyncio.sleep(0.15)
        now_running -= 1
        return "done"

    async with running(busy, settings, max_concurrency=2, fetch_count=10):
        sent = [await client.send_message("busy", f"c{i}", "go") for i in range(6)]
        results = await asyncio.gather(
            *(collect(client, f"c{i}", s.message_id) for i, s in enumerate(sent))
        )
    assert peak == 2
    assert all(
        finals(ev, s.message_id)[0].data["status"] == "COMPLETED"
        for ev, s in zip(results, sent, strict=True)
    )


async def test_stop_drains_running_tasks(client: GatewayClient, settings: RedisSettings) -> None:
    async with running(slow, settings, drain_timeout=10):
        sent = await client.send_message("slow", "s9", "0.5")
        await _until_state(client, "s9", sent.message_id, "RUNNING")
    # the block above stopped the runner; the task had finished before it returned
    record = await client.registry.get_execution_by_message("s9", sent.message_id)
    assert record and record.status == "COMPLETED"


async def test_a_worker_id_is_held_by_one_live_process(
    client: GatewayClient, settings: RedisSettings
) -> None:
    from byway.worker import FunctionWorker

    first = FunctionWorker(echo.handler, ["echo"], worker_id="only-one")
    second = FunctionWorker(echo.handler, ["echo"], worker_id="only-one")
    async with running(first, settings):
        with pytest.raises(WorkerIdInUseError, match="only-one"):
            async with running(second, settings):
                pass
        assert [w.worker_id for w in await client.registry.list_workers()] == ["only-one"]
    async with running(second, settings):  # released on stop: the id is free again
        assert [w.worker_id for w in await client.registry.list_workers()] == ["only-one"]
    assert await client.registry.list_workers() == []


async def test_a_redelivered_finished_command_is_acknowledged_without_running(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    calls = 0

    @agent("once")
    async def once(command: Command, context: AgentContext) -> str:
        nonlocal calls
        calls += 1
        return "ran"

    async with running(once, settings):
        sent = await client.send_message("once", "s10", "x")
        await collect(client, "s10", sent.message_id)
        [(_, fields)] = await redis.xrange(settings.keys.agent_stream("once"))
        await redis.xadd(settings.keys.agent_stream("once"), {"data": fields[b"data"]})  # duplicate
        # a later message on the same stream: once it has ended, the duplicate was handled
        after = await client.send_message("once", "s10b", "y")
        await collect(client, "s10b", after.message_id)
        info = (await redis.xinfo_groups(settings.keys.agent_stream("once")))[0]
        assert info["pending"] == 0
    events = await _drain(client.stream("s10", idle_timeout=0.2, block_ms=100))
    assert calls == 2  # the first message and the later one; never the duplicate
    assert len(finals(events, sent.message_id)) == 1


async def test_interceptors_see_every_command(
    client: GatewayClient, settings: RedisSettings
) -> None:
    seen: list[str] = []

    @agent("meta")
    async def meta(command: Command, context: AgentContext) -> AgentTaskResult:
        return AgentTaskResult(reply_data=command.header.metadata)

    async def tag(command: Command) -> Command:
        seen.append(command.header.message_id)
        command.header.metadata["tenant"] = "acme"
        return command

    client.add_interceptor(tag)
    async with running(meta, settings):
        sent = await client.send_message("meta", "s11", "x", metadata={"a": 1})
        [final] = finals(await collect(client, "s11", sent.message_id), sent.message_id)
    assert seen == [sent.message_id]
    assert final.data["reply_data"] == {"a": 1, "tenant": "acme"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target_agent_type": "", "session_id": "s", "content": "x"}, "target_agent_type"),
        ({"target_agent_type": "a", "session_id": " ", "content": "x"}, "session_id"),
        ({"target_agent_type": "a", "session_id": "s{1}", "content": "x"}, "session_id"),
        ({"target_agent_type": "a", "session_id": "s", "content": ""}, "content"),
        ({"target_agent_type": "a", "session_id": "s", "content": [1]}, "content"),
        ({"target_agent_type": "a", "session_id": "s", "content": "x", "metadata": []}, "metadata"),
    ],
)
async def test_bad_send_arguments_name_the_field(
    client: GatewayClient, kwargs: dict, field: str
) -> None:
    with pytest.raises(ConfigurationError, match=field):
        await client.send_message(**kwargs)


async def test_commands_from_other_sdks_without_a_record_still_run(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    from byway import AskAgentCommand, MessageHeader

    command = AskAgentCommand(
        header=MessageHeader(
            message_id="msg-foreign", session_id="s12", trace_id="t", target_agent_type="echo"
        ),
        content="from elsewhere",
    )
    async with running(echo, settings):
        await redis.xadd(settings.keys.agent_stream("echo"), {"data": encode_command(command)})
        events = await collect(client, "s12", "msg-foreign")
    assert finals(events, "msg-foreign")[0].data["content"] == "from elsewhere"
    record = await client.registry.get_execution_by_message("s12", "msg-foreign")
    assert record and record.states == ["QUEUED", "RUNNING", "COMPLETED"]


async def test_state_artifact_and_execution_state_reach_the_user(
    client: GatewayClient, settings: RedisSettings
) -> None:
    from byway import ArtifactEvent, StateChangeEvent, StreamChunkEvent

    @agent("steps")
    async def steps(command: Command, context: AgentContext) -> str:
        await context.emit_state(StateChangeEvent(state="searching", metadata={"q": 1}))
        await context.update_execution_state("CALLING_AGENT", target="search")
        await context.emit_chunk(
            StreamChunkEvent(content=None, tool_calls=[{"id": "c1", "name": "search"}])
        )
        await context.emit_artifact(
            ArtifactEvent(url="s3://bucket/report.pdf", metadata={"pages": 3})
        )
        return "done"

    async with running(steps, settings):
        sent = await client.send_message("steps", "s13", "go")
        events = await collect(client, "s13", sent.message_id)
    kinds = [(e.event_type, e.kind) for e in events]
    assert kinds == [
        ("stepComplete", "state"),
        ("answerDelta", "chunk"),
        ("stepComplete", "artifact"),
        ("finalAnswer", "final"),
        ("appStreamResponse", "end"),
    ]
    assert events[0].data == {"kind": "state", "state": "searching", "metadata": {"q": 1}}
    assert events[1].data["tool_calls"] == [{"id": "c1", "name": "search"}]
    assert events[2].data == {
        "kind": "artifact",
        "url": "s3://bucket/report.pdf",
        "metadata": {"pages": 3},
    }
    record = await client.registry.get_execution("s13", sent.execution_id)
    assert record is not None
    assert record.states == ["QUEUED", "RUNNING", "CALLING_AGENT", "COMPLETED"]
    assert isinstance(record.timeline, list) and record.timeline[2].detail == {"target": "search"}


async def test_session_keys_expire(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    from byway import AskAgentCommand, MessageHeader

    foreign = AskAgentCommand(
        header=MessageHeader(
            message_id="msg-ttl", session_id="ttl-f", trace_id="t", target_agent_type="echo"
        ),
        content="no record",
    )
    async with running(echo, settings, session_ttl_seconds=600):
        sent = await client.send_message("echo", "ttl-s", "x")
        await collect(client, "ttl-s", sent.message_id)
        await redis.xadd(settings.keys.agent_stream("echo"), {"data": encode_command(foreign)})
        await collect(client, "ttl-f", "msg-ttl")
    for session in ("ttl-s", "ttl-f"):
        for key in (settings.keys.session_registry(session), settings.keys.session_stream(session)):
            assert 0 < await redis.ttl(key) <= 7 * 24 * 3600, key


async def test_work_goes_on_when_redis_forgets_its_scripts() -> None:
    """After a restart or SCRIPT FLUSH, script calls fall back to loading the script."""
    from tests.conftest import private_redis

    with private_redis() as url:  # SCRIPT FLUSH is server-wide: use a server of our own
        settings = RedisSettings(url=url, namespace="flush")
        async with GatewayClient(settings=settings) as own, running(echo, settings):
            first = await own.send_message("echo", "f1", "before")
            await collect(own, "f1", first.message_id)
            await own.redis.script_flush()
            second = await own.send_message("echo", "f2", "after flush")
            events = await collect(own, "f2", second.message_id)
    assert finals(events, second.message_id)[0].data["content"] == "after flush"


async def test_control_streams_are_trimmed_below_what_is_still_needed(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    stream = settings.keys.agent_stream("slow")
    async with running(slow, settings, max_concurrency=1) as runner:
        done = [await client.send_message("slow", f"t{i}", "0") for i in range(20)]
        for i, s in enumerate(done):
            await collect(client, f"t{i}", s.message_id)
        busy = await client.send_message("slow", "busy", "3")  # pending while it runs
        waiting = await client.send_message("slow", "waiting", "0")  # not read yet
        for _ in range(100):
            record = await client.registry.get_execution("busy", busy.execution_id)
            if record and record.status == "RUNNING":
                break
            await asyncio.sleep(0.02)
        assert await redis.xlen(stream) == 22
        removed = await runner.recovery.trim()
        left = [e.decode() for e, _ in await redis.xrange(stream)]
        assert removed == 20
        assert left == [busy.stream_entry_id, waiting.stream_entry_id]
        await runner.stop()
