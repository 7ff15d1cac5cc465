"""Each Lua script, called through its typed wrapper against a real Redis.

What a script writes as an event or a command is read back with the decoders the rest of
Byway uses (``decode_event``, ``decode_command``) and compared field by field with what the
Python encoders would write, so a script that builds its JSON wrong fails here.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from byway import events
from byway.keys import Keys
from byway.protocol import (
    AgentState,
    AgentTaskResult,
    AskAgentCommand,
    EventType,
    MessageHeader,
    ResumeCommand,
    decode_command,
    decode_event,
    encode_command,
    encode_event,
)
from byway.registry import new_record
from byway.settings import RedisSettings
from byway.store.finish import (
    FinishArgs,
    FinishReply,
    HistoryTurns,
    SuspendArgs,
    Suspended,
    queue_finish,
    suspend,
)
from byway.store.script import Script, execute, handed_on, load, source
from byway.store.send import ResumeArgs, SendArgs, SendMode, resume, send
from byway.store.session import (
    CancelTreeArgs,
    KickSessionArgs,
    RenewLockArgs,
    TransitionArgs,
    cancel_tree,
    kick_session,
    queue_renew_lock,
    transition,
)
from byway.store.start import StartArgs, StartReply, queue_start
from byway.store.waits import (
    ClaimDeadlinesArgs,
    GroupResultArgs,
    GroupResultReply,
    claim_deadlines,
    queue_group_result,
)
from byway.store.workers import (
    FindOnlineArgs,
    LeaseArgs,
    Renewed,
    find_online,
    release_lease,
    renew_lease,
)

# v1 keys: a script here also writes other slots (the next message's stream, a caller's
# stream) unless it runs in outbox mode, which the tests call too
pytestmark = [pytest.mark.redis, pytest.mark.standalone, pytest.mark.timeout(60)]

_json = msgspec.json.Encoder()
NOW = 1_700_000_000_000
AGENT = "agent"
WORKER = "w1"


@pytest.fixture
def k(settings: RedisSettings) -> Keys:
    return settings.keys


@pytest.fixture
def session() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


def ask(session: str, message_id: str, **header: Any) -> AskAgentCommand:
    return AskAgentCommand(
        header=MessageHeader(message_id=message_id, session_id=session, trace_id="t-1",
                             target_agent_type=AGENT, source_agent_type="client", **header),
        content=f"hello from {message_id}",
    )  # fmt: skip


def record_of(command: AskAgentCommand, execution_id: str = "") -> bytes:
    h = command.header
    return new_record(
        execution_id=execution_id, message_id=h.message_id, session_id=h.session_id,
        trace_id=h.trace_id, status=AgentState.QUEUED, target_agent_type=h.target_agent_type,
        source_agent_type=h.source_agent_type, parent_message_id=h.parent_message_id,
        task_group_id=h.task_group_id, now=NOW,
    )  # fmt: skip


def start_args(k: Keys, command: AskAgentCommand | ResumeCommand, **over: Any) -> StartArgs:
    h = command.header
    base: dict[str, Any] = dict(
        keyspace=k, session_id=h.session_id, message_id=h.message_id,
        execution_id=f"exec-{h.message_id}", worker_id=WORKER, now_ms=NOW,
        record=record_of(command) if isinstance(command, AskAgentCommand) else b"{}",
        lock_lease_ms=60_000, entry_id="1-0", stream=k.agent_stream(AGENT),
        kind="resume" if isinstance(command, ResumeCommand) else "ask",
        command=encode_command(command), record_ttl_s=3600, lock_grace_ms=60_000,
        max_solo_runs=2,
    )  # fmt: skip
    return StartArgs(**{**base, **over})


async def start(redis: aioredis.Redis, args: StartArgs) -> StartReply:
    async with redis.pipeline(transaction=False) as pipe:
        queue_start(pipe, args)
        (result,) = await execute(redis, pipe)
    return StartReply.decode(result)


def finish_args(k: Keys, command: AskAgentCommand, execution_id: str, **over: Any) -> FinishArgs:
    h = command.header
    base: dict[str, Any] = dict(
        keyspace=k, session_id=h.session_id, execution_id=execution_id,
        message_id=h.message_id, status=AgentState.COMPLETED, now_ms=NOW + 10,
        worker_id=WORKER, result=b'{"status":"COMPLETED"}', stream_maxlen=1000, ttl_s=3600,
        lock_grace_ms=60_000,
    )  # fmt: skip
    return FinishArgs(**{**base, **over})


async def finish(redis: aioredis.Redis, args: FinishArgs) -> FinishReply:
    async with redis.pipeline(transaction=False) as pipe:
        queue_finish(pipe, args)
        (result,) = await execute(redis, pipe)
    return FinishReply.decode(result)


async def stored(redis: aioredis.Redis, k: Keys, session: str, message_id: str) -> Any:
    registry = k.session_registry(session)
    execution_id = await redis.hget(registry, f"msg_map:{message_id}")
    assert execution_id is not None
    return msgspec.json.decode(await redis.hget(registry, b"exec:" + execution_id))


async def put(redis: aioredis.Redis, k: Keys, session: str, record: dict[str, Any]) -> None:
    registry = k.session_registry(session)
    await redis.hset(
        registry,
        mapping={
            f"exec:{record['execution_id']}": _json.encode(record),
            f"msg_map:{record['message_id']}": record["execution_id"],
        },
    )


async def read_events(redis: aioredis.Redis, k: Keys, session: str) -> list[Any]:
    entries = await redis.xrange(k.session_stream(session))
    return [decode_event(fields[b"data"]) for _, fields in entries]


async def read_commands(redis: aioredis.Redis, stream: str) -> list[Any]:
    return [decode_command(fields[b"data"]) for _, fields in await redis.xrange(stream)]


def cancelled_events(rec: dict[str, Any], reason: str, now: int) -> list[Any]:
    """The events Python writes for a root that ends CANCELLED, decoded."""
    base = dict(trace_id=rec["trace_id"], session_id=rec["session_id"],
                source_agent_type=rec["target_agent_type"], message_id=rec["message_id"],
                parent_message_id="", timestamp=now)  # fmt: skip
    error = {"type": "Cancelled", "message": reason}
    final = events.final_data(AgentTaskResult(status="CANCELLED"), rec["execution_id"], error)
    return [
        decode_event(encode_event(event_type=EventType.FINAL_ANSWER, data=final, **base)),
        decode_event(
            encode_event(
                event_type=EventType.APP_STREAM_RESPONSE,
                data=events.end_data("CANCELLED", rec["execution_id"]),
                **base,
            )
        ),
    ]


# -- the loader ------------------------------------------------------------------------


def test_every_script_is_a_file_with_the_lib_included_where_it_says() -> None:
    lib = source("lib.lua")
    start_src = load("start").source
    assert lib in start_src and "--@include" not in start_src
    assert load("renew_lock").source == source("renew_lock.lua")
    assert lib not in load("renew_lock").source
    assert len(load("transition").sha) == 40
    assert lib in load("transition").source  # TRANSITION uses the lib, not a copy of it


async def test_a_script_redis_forgot_is_loaded_again(redis: aioredis.Redis, k: Keys) -> None:
    script = Script("return 'fresh-" + uuid.uuid4().hex + "'")
    assert (await script.run(redis, [k.deadlines()], [])).startswith(b"fresh-")
    async with redis.pipeline(transaction=False) as pipe:
        other = Script("return ARGV[1] .. '" + uuid.uuid4().hex + "'")
        other.queue(pipe, [k.deadlines()], ["x"])
        pipe.get(k.deadlines())
        results = await execute(redis, pipe)
    assert results[0].startswith(b"x") and results[1] is None


# -- SEND and RESUME -------------------------------------------------------------------


def send_args(k: Keys, command: AskAgentCommand, **over: Any) -> SendArgs:
    h = command.header
    base: dict[str, Any] = dict(
        keyspace=k, session_id=h.session_id, target_agent_type=AGENT,
        stream=k.agent_stream(AGENT), command=encode_command(command),
        execution_id=f"exec-{h.message_id}", message_id=h.message_id,
        record=record_of(command, f"exec-{h.message_id}"), record_ttl_s=3600, root=True,
        lock_grace_ms=60_000,
    )  # fmt: skip
    return SendArgs(**{**base, **over})


async def test_send_sends_a_free_sessions_message_and_queues_behind_a_busy_one(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    first, second = ask(session, "m1"), ask(session, "m2")
    sent = await send(redis, send_args(k, first))
    assert (sent.accepted, sent.disposition, sent.execution_id) == (True, "sent", "exec-m1")
    assert sent.entry_id and sent.holder == ""
    assert await read_commands(redis, k.agent_stream(AGENT)) == [first]
    assert await redis.get(k.session_lock(session)) == b"m1"
    queued = await send(redis, send_args(k, second))
    assert (queued.disposition, queued.holder, queued.entry_id) == ("queued", "m1", "")
    (item,) = await redis.lrange(k.session_queue(session), 0, -1)
    stream, data = handed_on(item) or ("", b"")
    assert (stream, decode_command(data)) == (k.agent_stream(AGENT), second)
    assert await redis.smembers(k.queued_sessions()) == {session.encode()}
    assert (await stored(redis, k, session, "m2"))["status"] == "QUEUED"
    # the reject strategy refuses it instead, naming the holder
    busy = await send(redis, send_args(k, ask(session, "m3"), strategy="reject"))
    assert (busy.accepted, busy.error_code, busy.holder) == (False, "SESSION_BUSY", "m1")
    # no worker online: refused before anything is written
    offline = await send(redis, send_args(k, ask(session, "m4"), online_prefix="x:"))
    assert (offline.accepted, offline.error_code) == (False, "AGENT_TYPE_UNAVAILABLE")
    assert await redis.hget(k.session_registry(session), "msg_map:m4") is None


async def test_send_in_outbox_mode_writes_only_the_sessions_slot(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    sent = await send(redis, send_args(k, ask(session, "m1"), mode=SendMode.OUTBOX))
    assert (sent.disposition, sent.entry_id) == ("sent", "")
    assert await redis.xlen(k.agent_stream(AGENT)) == 0  # the caller sends it
    await send(redis, send_args(k, ask(session, "m2"), mode=SendMode.OUTBOX))
    assert await redis.exists(k.queued_sessions()) == 0  # the caller adds the session


async def test_resume_writes_an_answer_only_while_its_question_is_open(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    command = ask(session, "m1")
    rec = msgspec.json.decode(record_of(command, "e1"))
    await put(redis, k, session, {**rec, "status": "RUNNING"})
    answer = ResumeCommand(
        header=MessageHeader(message_id="m1", session_id=session, trace_id="t-1",
                             target_agent_type=AGENT),
        content="yes",
    )  # fmt: skip
    args = ResumeArgs(keyspace=k, session_id=session, stream=k.agent_stream(AGENT),
                      message_id="m1", command=encode_command(answer))  # fmt: skip
    refused = await resume(redis, args)
    assert (refused.written, refused.status) == (False, "RUNNING")
    await put(redis, k, session, {**rec, "status": "WAITING_USER"})
    await redis.hset(k.session_registry(session), "wait:e1", "wait-1")
    written = await resume(redis, args)
    assert written.written and written.entry_id
    assert await read_commands(redis, k.agent_stream(AGENT)) == [answer]
    again = await resume(redis, args)
    assert (again.written, again.status) == (False, "ANSWERED")
    unknown = await resume(redis, msgspec.structs.replace(args, message_id="nope"))
    assert unknown.status == "UNKNOWN"


# -- START -----------------------------------------------------------------------------


async def test_start_runs_a_fresh_root_ask_and_takes_its_session(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    command = ask(session, "m1")
    await redis.rpush(k.session_history(session), b'[{"role":"user"}]', b'[{"role":"x"}]')
    reply = await start(redis, start_args(k, command, config_version="v7", history_limit=1))
    assert (reply.verdict, reply.execution_id, reply.state) == ("run", "exec-m1", b"")
    assert reply.history == [b'[{"role":"x"}]']
    rec = msgspec.json.decode(reply.record)
    assert rec == await stored(redis, k, session, "m1")
    assert (rec["status"], rec["worker_id"], rec["attempts"], rec["step_attempts"]) == (
        "RUNNING", WORKER, 1, 1)  # fmt: skip
    assert (rec["redis_message_id"], rec["stream_name"], rec["config_version"]) == (
        "1-0", k.agent_stream(AGENT), "v7")  # fmt: skip
    assert [e["status"] for e in rec["timeline"]] == ["QUEUED", "RUNNING"]
    assert await redis.get(k.session_lock(session)) == b"m1"
    # the same ask in another entry while it runs: stale, only its own entry runs
    other = await start(redis, start_args(k, command, entry_id="2-0"))
    assert (other.verdict, other.status) == ("stale", "RUNNING")


async def test_start_of_an_ended_execution_is_done_and_hands_its_session_on(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    first, second = ask(session, "m1"), ask(session, "m2")
    await send(redis, send_args(k, first))
    await send(redis, send_args(k, second))  # queued behind m1
    rec = await stored(redis, k, session, "m1")
    await put(redis, k, session, {**rec, "status": "COMPLETED"})
    await redis.delete(k.agent_stream(AGENT))
    reply = await start(redis, start_args(k, first))
    assert (reply.verdict, reply.status, reply.note, reply.handed) == (
        "done", "COMPLETED", "COMPLETED", b"")  # fmt: skip
    assert await redis.get(k.session_lock(session)) == b"m2"
    assert await read_commands(redis, k.agent_stream(AGENT)) == [second]


async def test_start_defers_a_root_while_another_holds_its_session(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    await redis.set(k.session_lock(session), "m0")
    command = ask(session, "m1")
    reply = await start(redis, start_args(k, command))
    assert (reply.verdict, reply.holder, reply.note) == ("deferred", "m0", "m0")
    (item,) = await redis.lrange(k.session_queue(session), 0, -1)
    assert handed_on(item) == (k.agent_stream(AGENT), encode_command(command))
    assert await redis.sismember(k.queued_sessions(), session)


async def test_start_refuses_a_task_whose_cancel_was_requested(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    command = ask(session, "m1")
    rec = msgspec.json.decode(record_of(command, "e1"))
    await put(redis, k, session, {**rec, "cancel_requested": True, "cancel_reason": "stop"})
    reply = await start(redis, start_args(k, command))
    assert (reply.verdict, reply.execution_id, reply.reason) == ("cancelled", "e1", "stop")


async def test_start_takes_over_a_dead_run_then_runs_it_alone_then_gives_up(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    command = ask(session, "m1")
    assert (await start(redis, start_args(k, command))).verdict == "run"
    # its worker died: the same entry comes back while the record says RUNNING
    again = await start(redis, start_args(k, command, worker_id="w2"))
    assert again.verdict == "run"
    rec = msgspec.json.decode(again.record)
    assert (rec["step_attempts"], rec["attempts"], rec["worker_id"]) == (2, 2, "w2")
    assert rec["timeline"][-1]["detail"] == {"retry": 2, "takeover_from": WORKER}
    suspect = await start(redis, start_args(k, command))
    assert (suspect.verdict, suspect.execution_id) == ("suspect", "exec-m1")
    alone = await start(redis, start_args(k, command, alone=True, max_solo_runs=1))
    assert alone.verdict == "run"
    assert msgspec.json.decode(alone.record)["solo_runs"] == 1
    poison = await start(redis, start_args(k, command, alone=True, max_solo_runs=1))
    assert (poison.verdict, poison.runs) == ("poison", 1)
    assert msgspec.json.decode(poison.record)["solo_runs"] == 1


async def test_start_resumes_a_waiting_task_once_with_its_state(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    command = ask(session, "m1")
    started = await start(redis, start_args(k, command))
    verdict = await suspend(redis, suspend_args(k, session, started.execution_id))
    assert verdict is Suspended.WAITING
    answer = ResumeCommand(
        header=MessageHeader(message_id="m1", session_id=session, trace_id="t-1",
                             target_agent_type=AGENT),
        content="blue",
    )  # fmt: skip
    resumed = await start(redis, start_args(k, answer, entry_id="3-0"))
    assert (resumed.verdict, resumed.state) == ("run", b'{"step":2}')
    rec = msgspec.json.decode(resumed.record)
    assert rec["status"] == "RUNNING" and rec["timeline"][-1]["status"] == "RESUMED"
    assert rec["timeline"][-1]["detail"] == {"by": "user"}
    assert rec["trace"] == {"traceparent": "00-abc"}
    stale = await start(redis, start_args(k, answer, entry_id="4-0"))
    assert (stale.verdict, stale.status) == ("stale", "RUNNING")
    unknown = ResumeCommand(header=MessageHeader(message_id="nope", session_id=session,
                                                 trace_id="t"))  # fmt: skip
    assert (await start(redis, start_args(k, unknown))).status == "UNKNOWN"


# -- SUSPEND ---------------------------------------------------------------------------


def suspend_args(k: Keys, session: str, execution_id: str, **over: Any) -> SuspendArgs:
    question = encode_event(
        trace_id="t-1", session_id=session, event_type=EventType.TASK_STOP,
        source_agent_type=AGENT, message_id="m1", parent_message_id="",
        data={"kind": "ask_user", "prompt": "colour?", "schema": None, "metadata": {}},
    )  # fmt: skip
    base: dict[str, Any] = dict(
        keyspace=k, session_id=session, execution_id=execution_id, message_id="m1",
        status="WAITING_USER", now_ms=NOW + 5, worker_id=WORKER,
        wait=b'{"wait_id":"wait-1","deadline":0}', state=b'{"step":2}',
        detail=b'{"question":"colour?"}', event=question, stream_maxlen=1000, ttl_s=3600,
        trace=b'{"traceparent":"00-abc"}',
    )  # fmt: skip
    return SuspendArgs(**{**base, **over})


async def test_suspend_records_the_wait_and_its_question(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    started = await start(redis, start_args(k, ask(session, "m1")))
    args = suspend_args(k, session, started.execution_id)
    assert await suspend(redis, args) is Suspended.WAITING
    rec = await stored(redis, k, session, "m1")
    assert (rec["status"], rec["waited"], rec["timeline"][-1]["detail"]) == (
        "WAITING_USER", True, {"question": "colour?"})  # fmt: skip
    registry = k.session_registry(session)
    assert await redis.hget(registry, f"wait:{started.execution_id}") == args.wait
    assert await redis.hget(registry, f"state:{started.execution_id}") == b'{"step":2}'
    assert await read_events(redis, k, session) == [decode_event(args.event)]
    assert await redis.pttl(k.session_lock(session)) > 60_000  # kept for the record's TTL
    rec["cancel_requested"] = True
    await put(redis, k, session, rec)
    assert await suspend(redis, args) is Suspended.CANCELLED
    await put(redis, k, session, {**rec, "status": "COMPLETED"})
    assert await suspend(redis, args) is Suspended.ENDED


# -- FINISH ----------------------------------------------------------------------------


async def test_finish_ends_once_writes_its_events_and_hands_the_session_on(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    first, second = ask(session, "m1"), ask(session, "m2")
    await send(redis, send_args(k, first))
    await send(redis, send_args(k, second))
    started = await start(redis, start_args(k, first))
    await redis.delete(k.agent_stream(AGENT))
    base = dict(trace_id="t-1", session_id=session, source_agent_type=AGENT, message_id="m1",
                parent_message_id="")  # fmt: skip
    final = encode_event(event_type=EventType.FINAL_ANSWER, data={"kind": "final"}, **base)
    end = encode_event(event_type=EventType.APP_STREAM_RESPONSE, data={"kind": "end"}, **base)
    args = finish_args(k, first, started.execution_id, events=[final, end])
    reply = await finish(redis, args)
    assert (reply.ended, reply.status, reply.next_message_id, reply.handed) == (
        True, "COMPLETED", "m2", b"")  # fmt: skip
    rec = await stored(redis, k, session, "m1")
    assert (rec["status"], rec["finished_at"], rec["result"]) == (
        "COMPLETED", NOW + 10, {"status": "COMPLETED"})  # fmt: skip
    assert rec["timeline"][-1] == {"status": "COMPLETED", "timestamp": NOW + 10,
                                   "worker_id": WORKER}  # fmt: skip
    assert await read_events(redis, k, session) == [decode_event(final), decode_event(end)]
    assert await redis.get(k.session_lock(session)) == b"m2"
    assert await read_commands(redis, k.agent_stream(AGENT)) == [second]
    again = await finish(redis, args)  # a duplicate end writes nothing
    assert again == FinishReply()
    assert len(await read_events(redis, k, session)) == 2


async def test_finish_of_a_root_cancelled_meanwhile_writes_a_cancelled_end(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    command = ask(session, "m1")
    await send(redis, send_args(k, command, mode=SendMode.OUTBOX))
    await send(redis, send_args(k, ask(session, "m2"), mode=SendMode.OUTBOX))
    started = await start(redis, start_args(k, command, outbox=True))
    rec = await stored(redis, k, session, "m1")
    await put(redis, k, session, {**rec, "cancel_requested": True, "cancel_reason": "enough"})
    group = b'[{"role":"user","content":"hi"},{"role":"assistant","content":"an answer"}]'
    head = len(b'[{"role":"user","content":"hi"},')
    history = HistoryTurns(keep=10, ttl_s=3600, group=group, head_bytes=head,
                           cancelled_turn=b'{"role":"assistant","content":""}')  # fmt: skip
    args = finish_args(k, command, started.execution_id, outbox=True, history=history,
                       events=[b'{"never":"written"}'])  # fmt: skip
    reply = await finish(redis, args)
    assert (reply.ended, reply.status, reply.next_message_id) == (True, "CANCELLED", "m2")
    assert handed_on(reply.handed) == (k.agent_stream(AGENT), encode_command(ask(session, "m2")))
    assert await redis.llen(k.session_queue(session)) == 1  # outbox: START removes it
    rec = await stored(redis, k, session, "m1")
    assert rec["status"] == "CANCELLED"
    assert rec["timeline"][-1]["detail"] == {"discarded": "COMPLETED"}
    assert await read_events(redis, k, session) == cancelled_events(rec, "enough", NOW + 10)
    assert await redis.lrange(k.session_history(session), 0, -1) == [
        b'[{"role":"user","content":"hi"},{"role":"assistant","content":""}]'
    ]


# -- CANCEL_TREE -----------------------------------------------------------------------


async def test_cancel_tree_ends_the_waiting_and_queued_and_stops_the_running(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    root = ask(session, "root")
    child = ask(session, "child", parent_message_id="root")
    grandchild = ask(session, "grand", parent_message_id="child")
    base = msgspec.json.decode(record_of(root, "e-root"))
    await put(redis, k, session, {**base, "status": "WAITING_AGENT"})
    await put(redis, k, session, {**msgspec.json.decode(record_of(child, "e-child")),
                                  "source_agent_type": AGENT, "status": "RUNNING",
                                  "worker_id": "w9"})  # fmt: skip
    await put(redis, k, session, {**msgspec.json.decode(record_of(grandchild, "e-grand")),
                                  "source_agent_type": AGENT})  # fmt: skip
    await redis.hset(k.session_registry(session), "wait:e-root", "{}")
    await redis.set(k.session_lock(session), "root")
    nxt = ask(session, "next")
    await send(redis, send_args(k, nxt))
    args = CancelTreeArgs(keyspace=k, session_id=session, message_id="root", reason="halt",
                          now_ms=NOW + 20, requested_by="client", stream_maxlen=1000,
                          ttl_s=3600, lock_grace_ms=60_000)  # fmt: skip
    reply = await cancel_tree(redis, args)
    assert [(i["message_id"], i["previous"], i["ended"]) for i in reply.items] == [
        ("root", "WAITING_AGENT", True),
        ("child", "RUNNING", False),
        ("grand", "QUEUED", True),
    ]
    assert reply.items[1]["worker_id"] == "w9" and reply.items[1]["source_agent_type"] == AGENT
    assert reply.items[0]["trace_id"] == "t-1" and reply.items[0]["execution_id"] == "e-root"
    assert reply.handed == b""  # v1: the next message went to its stream
    assert await redis.get(k.session_lock(session)) == b"next"
    assert await read_commands(redis, k.agent_stream(AGENT)) == [nxt]
    recs = {m: await stored(redis, k, session, m) for m in ("root", "child", "grand")}
    assert {m: r["status"] for m, r in recs.items()} == {
        "root": "CANCELLED", "child": "CANCELLING", "grand": "CANCELLED"}  # fmt: skip
    assert recs["root"]["result"] == {
        "status": "CANCELLED",
        "error": {"type": "Cancelled", "message": "halt"},
    }
    assert recs["grand"]["timeline"][-1]["detail"] == {"by": "client"}
    assert await redis.hget(k.session_registry(session), "wait:e-root") is None
    # only the root gets a final and an end event, as Python writes them
    assert await read_events(redis, k, session) == cancelled_events(recs["root"], "halt", NOW + 20)
    # a running one stays listed until it ends; nothing to cancel is an empty list (cjson
    # writes it as {})
    assert [i["message_id"] for i in (await cancel_tree(redis, args)).items] == ["child"]
    nothing = msgspec.structs.replace(args, message_id="unknown")
    assert (await cancel_tree(redis, nothing)).items == []


# -- GROUP_RESULT ----------------------------------------------------------------------


async def make_group(redis: aioredis.Redis, k: Keys, group_id: str, session: str) -> None:
    await redis.hset(k.task_group(group_id), mapping={
        "total": 2, "completed": 0, "source_agent_type": "caller",
        "parent_message_id": "m-caller", "caller_stream": k.agent_stream("caller"),
        "session_id": session, "trace_id": "t-9", "order": '["c1","c2"]',
    })  # fmt: skip


def expected_resume(group_id: str, session: str, results: list[Any]) -> ResumeCommand:
    return ResumeCommand(
        header=MessageHeader(message_id="m-caller", session_id=session, trace_id="t-9",
                             target_agent_type="caller", task_group_id=group_id),
        status="COMPLETED", reply_data=results,
    )  # fmt: skip


async def report(redis: aioredis.Redis, args: GroupResultArgs) -> GroupResultReply:
    async with redis.pipeline(transaction=False) as pipe:
        queue_group_result(pipe, args)
        (result,) = await execute(redis, pipe)
    return GroupResultReply.decode(result)


RESULTS = [
    {"message_id": "c1", "status": "COMPLETED", "reply_data": [], "content": "ünï \"q\""},
    {"message_id": "c2", "status": "FAILED", "reply_data": {"x": 0.30000000000000004},
     "error": {"type": "Boom", "message": "a/b"}},
]  # fmt: skip


@pytest.mark.parametrize("outbox", [False, True])
async def test_group_result_resumes_the_caller_once_with_every_result_in_order(
    redis: aioredis.Redis, k: Keys, session: str, outbox: bool
) -> None:
    group_id = f"g-{uuid.uuid4().hex[:6]}"
    await make_group(redis, k, group_id, session)

    def args(child: str, result: dict[str, Any]) -> GroupResultArgs:
        return GroupResultArgs(keyspace=k, group_id=group_id, child_message_id=child,
                               result=_json.encode(result), ttl_s=3600, outbox=outbox)  # fmt: skip

    # the second child reports first, twice: counted once, and the group waits for c1
    assert await report(redis, args("c2", RESULTS[1])) == GroupResultReply()
    assert await report(redis, args("c2", {"other": 1})) == GroupResultReply()
    done = await report(redis, args("c1", RESULTS[0]))
    assert done.resumed
    stream = k.agent_stream("caller")
    if outbox:
        assert done.forward is not None and done.forward[0] == stream
        resume_data = done.resume
        assert await redis.xlen(stream) == 0
        await redis.hset(k.task_group(group_id), "resumed", "1")  # as the caller does
    else:
        assert done.forward is None
        ((_, fields),) = await redis.xrange(stream)
        resume_data = fields[b"data"]
    assert decode_command(resume_data) == expected_resume(group_id, session, RESULTS)
    # and exactly as Python encodes it, but for the order of keys
    python = encode_command(expected_resume(group_id, session, RESULTS))
    assert msgspec.json.decode(resume_data) == msgspec.json.decode(python)
    assert await report(redis, args("c1", RESULTS[0])) == GroupResultReply()  # once only
    assert await redis.xlen(stream) == (0 if outbox else 1)


# -- the rest --------------------------------------------------------------------------


async def test_kick_session_hands_a_free_session_to_its_next_message(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    args = KickSessionArgs(keyspace=k, session_id=session, lock_grace_ms=60_000, outbox=True)
    assert (await kick_session(redis, args)).empty
    await send(redis, send_args(k, ask(session, "m1")))
    await send(redis, send_args(k, ask(session, "m2")))  # queued behind m1
    assert (await kick_session(redis, args)).busy
    await redis.delete(k.session_lock(session))
    kicked = await kick_session(redis, args)
    assert (kicked.busy, kicked.empty, kicked.message_id) == (False, False, "m2")
    assert handed_on(kicked.handed) == (k.agent_stream(AGENT), encode_command(ask(session, "m2")))
    assert await redis.get(k.session_lock(session)) == b"m2"


async def test_renew_lock_extends_only_its_holders_lock(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    await redis.set(k.session_lock(session), "m1", px=1000)
    async with redis.pipeline(transaction=False) as pipe:
        for holder in ("m1", "m2"):
            queue_renew_lock(pipe, RenewLockArgs(keyspace=k, session_id=session,
                                                 message_id=holder, lease_ms=50_000))  # fmt: skip
        assert await execute(redis, pipe) == [1, 0]
    assert await redis.pttl(k.session_lock(session)) > 10_000


async def test_claim_deadlines_claims_each_due_wait_once(redis: aioredis.Redis, k: Keys) -> None:
    await redis.zadd(k.deadlines(), {b'{"w":1}': NOW - 1, b'{"w":2}': NOW + 60_000})
    args = ClaimDeadlinesArgs(keyspace=k, now_ms=NOW)
    assert await claim_deadlines(redis, args) == [b'{"w":1}']
    assert await claim_deadlines(redis, args) == []  # claimed for 30 s
    later = msgspec.structs.replace(args, now_ms=NOW + 30_000)
    assert await claim_deadlines(redis, later) == [b'{"w":1}']


async def test_transition_writes_a_handlers_state_but_never_a_schedulers(
    redis: aioredis.Redis, k: Keys, session: str
) -> None:
    command = ask(session, "m1")
    await put(redis, k, session, msgspec.json.decode(record_of(command, "e1")))
    args = TransitionArgs(keyspace=k, session_id=session, execution_id="e1",
                          state="searching", now_ms=NOW + 1, worker_id=WORKER,
                          detail=b'{"q":"x"}')  # fmt: skip
    assert await transition(redis, args)
    rec = await stored(redis, k, session, "m1")
    assert (rec["status"], rec["updated_at"]) == ("searching", NOW + 1)
    assert rec["timeline"][-1] == {"status": "searching", "timestamp": NOW + 1,
                                   "worker_id": WORKER, "detail": {"q": "x"}}  # fmt: skip
    plain = msgspec.structs.replace(args, state="reading", detail=b"{}")
    assert await transition(redis, plain)
    assert "detail" not in (await stored(redis, k, session, "m1"))["timeline"][-1]
    assert not await transition(redis, msgspec.structs.replace(args, state="running"))
    await put(redis, k, session, {**rec, "status": "FAILED"})
    assert not await transition(redis, args)
    assert not await transition(redis, msgspec.structs.replace(args, execution_id="gone"))


async def test_leases_are_compare_and_set_on_their_token(redis: aioredis.Redis, k: Keys) -> None:
    worker = f"w-{uuid.uuid4().hex[:6]}"
    ours = LeaseArgs(keyspace=k, worker_id=worker, token="t1", lease=b'{"token":"t1"}',
                     lease_ms=60_000)  # fmt: skip
    assert await renew_lease(redis, ours) is Renewed.RESTORED  # it was gone
    assert await renew_lease(redis, ours) is Renewed.RENEWED
    theirs = msgspec.structs.replace(ours, token="t2", lease=b'{"token":"t2"}')
    assert await renew_lease(redis, theirs) is Renewed.TAKEN
    await redis.sadd(k.agent_type_workers(AGENT), worker, "w-dead")
    assert await find_online(redis, FindOnlineArgs(keyspace=k, agent_type=AGENT)) == worker
    dead = FindOnlineArgs(keyspace=k, agent_type=AGENT, target_worker="w-dead")
    assert await find_online(redis, dead) is None
    assert not await release_lease(redis, theirs)
    assert await release_lease(redis, ours)
    assert await redis.exists(k.worker_online(worker)) == 0
    assert await find_online(redis, FindOnlineArgs(keyspace=k, agent_type=AGENT)) is None
