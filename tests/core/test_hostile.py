"""What a hostile or broken writer can do with access to the control streams: nothing that
jams an agent type, runs twice, reaches another session, or grows without bound."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest
import redis.asyncio as aioredis

from byway import (
    AgentContext,
    Command,
    ConfigurationError,
    GatewayClient,
    LimitExceededError,
    RedisSettings,
    agent,
)
from byway.errors import ProtocolError
from byway.flow import DEPTH_KEY, WAIT_ID_KEY
from byway.limits import Limits
from byway.protocol import AskAgentCommand, MessageHeader, ResumeCommand, encode_command
from tests.agents.basic import echo, slow
from tests.conftest import running, until_status

pytestmark = pytest.mark.redis


def ask(session: str, message_id: str, content: Any = "hello") -> dict[str, Any]:
    return {
        "action_type": "ASK_AGENT",
        "header": {"message_id": message_id, "session_id": session, "trace_id": "t1"},
        "body": {"content": content},
    }


def raw(command: dict[str, Any]) -> bytes:
    return json.dumps(command).encode()


DEEP = b'"trace_id": "t1", "metadata": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}"
#: entries no worker may choke on, each with a word its dead letter's reason must hold
POISON: list[tuple[str, dict[bytes, bytes], str]] = [
    (
        "non-UTF-8 in a string",
        {b"data": raw(ask("p1", "m1")).replace(b'"m1"', b'"m\xff"')},
        "UTF-8",
    ),
    (
        "nested 5,000 deep",
        {b"data": raw(ask("p2", "m2", "x")).replace(b'"trace_id": "t1"', DEEP)},
        "nested",
    ),
    ("a lone surrogate", {b"data": raw(ask("p3", "m3")).replace(b'"hello"', b'"\\ud800"')}, "JSON"),
    ("no data field", {b"payload": raw(ask("p4", "m4"))}, "data"),
    ("not JSON", {b"data": b"{not json"}, "JSON"),
    ("wrong types", {b"data": raw({**ask("p6", "m6"), "header": {"message_id": 6}})}, "message_id"),
    ("a newline in an id", {b"data": raw(ask("p7\nFORGED", "m7"))}, "control"),
    ("an id of 10,000 chars", {b"data": raw(ask("p" * 10_000, "m8"))}, "256"),
    ("an unknown action", {b"data": raw({**ask("p9", "m9"), "action_type": "RM_RF"})}, "action"),
    ("a JSON array", {b"data": b"[1, 2, 3]"}, "object"),
]


async def test_poison_entries_are_dead_lettered_and_the_rest_of_their_batch_runs(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    keys = settings.keys
    stream = keys.agent_stream("echo")
    # the poison and a valid ask in one stream before the worker reads: one batch
    await redis.xgroup_create(stream, "agent_engines", id="0", mkstream=True)
    for _, fields, _ in POISON[:5]:
        await redis.xadd(stream, fields)  # type: ignore[arg-type]
    sent = await client.send_message("echo", "good", "still here", require_online_worker=False)
    for _, fields, _ in POISON[5:]:
        await redis.xadd(stream, fields)  # type: ignore[arg-type]
    async with running(echo, settings, fetch_count=50):
        final = await client.wait_for_final("good", sent.message_id, timeout=15)
        for _ in range(100):
            if await redis.xlen(keys.dead_letters()) >= len(POISON):
                break
            await asyncio.sleep(0.05)
    assert final.data["status"] == "COMPLETED"
    dead = [json.loads(f[b"data"]) for _, f in await redis.xrange(keys.dead_letters())]
    assert len(dead) == len(POISON)
    for (name, _, word), letter in zip(POISON, dead, strict=True):
        assert word in letter["reason"], (name, letter["reason"])
        assert len(letter["reason"]) < 400 and len(letter["raw"]) <= 1024, name
    assert (await redis.xinfo_groups(stream))[0]["pending"] == 0


async def test_a_poison_entry_held_by_a_dead_worker_is_dead_lettered_on_takeover(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    """Reclaim goes through the same decoding: the entry of a dead consumer is dead-lettered
    once, and the dead worker's valid entry behind it is recovered and runs."""
    keys = settings.keys
    stream = keys.agent_stream("echo")
    await redis.xgroup_create(stream, "agent_engines", id="0", mkstream=True)
    await redis.xadd(stream, POISON[1][1])  # type: ignore[arg-type]
    sent = await client.send_message("echo", "held", "recovered", require_online_worker=False)
    # a worker that read both and died (it has no lease)
    await redis.xreadgroup("agent_engines", "ghost", {stream: ">"}, count=10)
    async with running(echo, settings, lease_seconds=1):
        final = await client.wait_for_final("held", sent.message_id, timeout=20)
    assert final.data["status"] == "COMPLETED"
    assert await redis.xlen(keys.dead_letters()) == 1
    assert (await redis.xinfo_groups(stream))[0]["pending"] == 0


async def test_a_crafted_session_event_does_not_break_a_reader(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    session_stream = settings.keys.session_stream("crafted")
    await redis.xadd(session_stream, {b"data": b'{"session_id": "s", "event_type": "m\xff"}'})
    await redis.xadd(session_stream, {b"nodata": b"1"})
    await redis.xadd(session_stream, {b"data": b"[" * 5000 + b"]" * 5000})
    async with running(echo, settings):
        sent = await client.send_message("echo", "crafted", "after them")
        events = [e async for e in client.stream("crafted", until_message_id=sent.message_id)]
    assert [e.kind for e in events][-2:] == ["final", "end"]


async def test_a_lone_surrogate_is_refused_by_the_client_naming_the_field(
    client: GatewayClient,
) -> None:
    with pytest.raises(ConfigurationError, match="content: holds a lone surrogate"):
        await client.send_message("echo", "s", "bad \ud800 text", require_online_worker=False)


@agent("surrogate")
async def surrogate(command: Command, context: AgentContext) -> str:
    await context.emit_chunk("half a pair: \udc00")
    return "answer with \ud83d alone"


async def test_a_handler_writing_a_lone_surrogate_still_ends_its_task(
    client: GatewayClient, settings: RedisSettings
) -> None:
    async with running(surrogate, settings):
        sent = await client.send_message("surrogate", "sur", "go")
        final = await client.wait_for_final("sur", sent.message_id, timeout=15)
    assert final.data["status"] == "COMPLETED"
    assert final.data["content"] == "answer with \ufffd alone"


async def test_ids_that_cannot_be_keys_are_refused_by_the_client(client: GatewayClient) -> None:
    for session in ("}abc", "a\nb", "x" * 257, "   "):
        with pytest.raises(ConfigurationError, match="session_id"):
            await client.send_message("echo", session, "hi", require_online_worker=False)


async def test_a_cancel_from_another_session_does_not_reach_a_task(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    async with running(slow, settings, cancel_grace_seconds=0.1) as runner:
        sent = await client.send_message("slow", "victim", "1.5")
        await until_status(client, "victim", sent.message_id, "RUNNING")
        forged = {
            "action_type": "CANCEL_TASK",
            "header": {"message_id": "c1", "session_id": "attacker", "trace_id": "t"},
            "body": {"target_message_id": sent.message_id, "cancel_mode": "force"},
        }
        await redis.xadd(
            settings.keys.worker_stream(runner.worker.worker_id), {"data": raw(forged)}
        )
        await redis.xadd(settings.keys.agent_stream("slow"), {"data": raw(forged)})
        final = await client.wait_for_final("victim", sent.message_id, timeout=15)
    assert final.data["status"] == "COMPLETED"


@agent("asker")
async def asker(command: Command, context: AgentContext) -> object:
    if isinstance(command, ResumeCommand):
        return f"going to {command.content}"
    return await context.ask_user("Which city?")


async def test_a_resume_naming_another_session_does_not_answer_a_question(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    async with running(asker, settings):
        sent = await client.send_message("asker", "owner", "plan a trip")
        await until_status(client, "owner", sent.message_id, "WAITING_USER")
        forged = {
            "action_type": "RESUME",
            "header": {"message_id": sent.message_id, "session_id": "intruder", "trace_id": "t"},
            "body": {"content": "Mordor"},
        }
        await redis.xadd(settings.keys.agent_stream("asker"), {"data": raw(forged)})
        await asyncio.sleep(0.5)
        assert (await until_status(client, "owner", sent.message_id, "WAITING_USER")).status
        await client.resume("owner", sent.message_id, "Lisbon")
        final = await client.wait_for_final("owner", sent.message_id, timeout=15)
    assert final.data["content"] == "going to Lisbon"


@agent("caller")
async def caller(command: Command, context: AgentContext) -> object:
    if isinstance(command, ResumeCommand):
        return f"callee said {command.content}"
    return await context.call_agent("slow", "1.0")


async def test_a_forged_callee_reply_does_not_complete_its_caller(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    """A Resume naming the callee's message id while the callee still runs is stale: only
    the callee's own end may answer its caller."""
    async with running(caller, settings), running(slow, settings):
        sent = await client.send_message("caller", "tree", "go")
        record = await until_status(client, "tree", sent.message_id, "WAITING_AGENT")
        [callee] = [
            e
            for e in await client.registry.list_executions("tree")
            if e.parent_message_id == sent.message_id
        ]
        forged = {
            "action_type": "RESUME",
            "header": {
                "message_id": sent.message_id,
                "session_id": "tree",
                "trace_id": record.trace_id,
                "source_agent_type": "slow",
                "target_agent_type": "caller",
                "parent_message_id": callee.message_id,
            },
            "body": {"content": "FORGED", "status": "COMPLETED"},
        }
        await redis.xadd(settings.keys.agent_stream("caller"), {"data": raw(forged)})
        final = await client.wait_for_final("tree", sent.message_id, timeout=15)
    assert final.data["content"] == "callee said slept"


async def test_a_duplicate_ask_of_a_running_execution_does_not_run_twice(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    runs = 0

    @agent("counted")
    async def counted(command: Command, context: AgentContext) -> str:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.6)
        return "done"

    async with running(counted, settings):
        sent = await client.send_message("counted", "dup", "x")
        await until_status(client, "dup", sent.message_id, "RUNNING")
        [(_, fields)] = await redis.xrange(settings.keys.agent_stream("counted"))
        await redis.xadd(settings.keys.agent_stream("counted"), fields)  # type: ignore[arg-type]
        final = await client.wait_for_final("dup", sent.message_id, timeout=15)
        await asyncio.sleep(0.3)
        record = await client.registry.get_execution_by_message("dup", sent.message_id)
    assert final.data["status"] == "COMPLETED"
    assert runs == 1
    assert record is not None
    assert [s.status for s in record.timeline].count("RUNNING") == 1


async def test_commands_over_the_size_limit_are_refused_and_dead_lettered(
    settings: RedisSettings, redis: aioredis.Redis
) -> None:
    limits = Limits(max_command_bytes=10_000)
    async with GatewayClient(settings=settings, limits=limits) as small:
        with pytest.raises(LimitExceededError, match=r"body\.content is"):
            await small.send_message("echo", "big", "x" * 20_000, require_online_worker=False)
        command = AskAgentCommand(
            header=MessageHeader(message_id="m-big", session_id="big", trace_id="t"),
            content="y" * 20_000,
        )
        await redis.xadd(settings.keys.agent_stream("echo"), {"data": encode_command(command)})
        async with running(echo, settings, limits=limits):
            sent = await small.send_message("echo", "big", "small one")
            final = await small.wait_for_final("big", sent.message_id, timeout=15)
    assert final.data["status"] == "COMPLETED"
    [(_, letter)] = await redis.xrange(settings.keys.dead_letters())
    reason = json.loads(letter[b"data"])["reason"]
    assert "over the limit of 10000" in reason


@agent("chatty")
async def chatty(command: Command, context: AgentContext) -> str:
    if command.content == "big chunk":  # type: ignore[union-attr]
        await context.emit_chunk("z" * 5_000)
    return "w" * 5_000 if command.content == "big answer" else "ok"  # type: ignore[union-attr]


async def test_events_over_the_size_limit_fail_their_task_with_the_reason(
    client: GatewayClient, settings: RedisSettings
) -> None:
    async with running(chatty, settings, limits=Limits(max_event_bytes=2_000)):
        finals = []
        for text in ("big chunk", "big answer", "fine"):
            sent = await client.send_message("chatty", f"ev-{text[:3]}", text)
            finals.append(
                await client.wait_for_final(f"ev-{text[:3]}", sent.message_id, timeout=15)
            )
    assert [f.data["status"] for f in finals] == ["FAILED", "FAILED", "COMPLETED"]
    assert "chunk: " in finals[0].data["error"]["message"]
    assert "max_event_bytes=2,000" in finals[1].data["error"]["message"]


async def test_history_keeps_a_bounded_turn(client: GatewayClient, settings: RedisSettings) -> None:
    async with running(echo, settings, limits=Limits(max_history_bytes=1_000)) as runner:
        sent = await client.send_message("echo", "hist", "word " * 1_000)
        await client.wait_for_final("hist", sent.message_id, timeout=15)
        turns = await runner.history.list("hist")
    assert [t.role for t in turns] == ["user", "assistant"]
    for turn in turns:
        assert len(str(turn.content).encode()) < 1_100
        assert "more bytes not kept" in str(turn.content)


async def test_a_flood_of_reloads_costs_a_handful_not_one_each(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    builds = 0

    from byway import Plugin, PluginBuildContext, PluginManifest

    class Counting(Plugin):
        manifest = PluginManifest("counting")

        async def setup(self, ctx: PluginBuildContext) -> None:
            nonlocal builds
            builds += 1
            await asyncio.sleep(0.2)

    async with running(echo, settings, plugins=[Counting()]) as runner:
        stream = settings.keys.worker_stream(runner.worker.worker_id)
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(2_000):
                reload = {
                    "action_type": "RELOAD_PLUGINS",
                    "header": {"message_id": f"r{i}", "session_id": "-", "trace_id": "t"},
                    "body": {"reload_id": f"r{i}"},
                }
                pipe.xadd(stream, {"data": raw(reload)})
            await pipe.execute()
        for _ in range(200):
            pending = (await redis.xinfo_groups(stream))[0]
            if pending["pending"] == 0 and pending["last-delivered-id"] != b"0-0":
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
    # one reload runs at a time and at most one waits, whatever arrives meanwhile: the
    # start, then a reload per 0.2 s the worker spent reading the 2,000
    assert 2 <= builds <= 20


@pytest.mark.standalone
def test_a_loop_that_keeps_failing_stops_the_worker_non_zero(
    settings: RedisSettings, tmp_path: Any
) -> None:
    """A bug in a loop is impossible to miss: restarted with backoff, then the process
    exits non-zero (here the consume loop fails at every read: a broken XREADGROUP)."""
    script = tmp_path / "broken.py"
    script.write_text(
        "import asyncio, logging\n"
        "import redis.asyncio as r\n"
        "from byway import RedisSettings\n"
        "from byway.app import serve\n"
        "from tests.agents.basic import echo\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "read = r.Redis.xreadgroup\n"
        "async def boom(self, *a, **k):\n"
        "    if k.get('block'):  # the consume loop's blocking read, not recovery's\n"
        "        raise RuntimeError('a bug in reading')\n"
        "    return await read(self, *a, **k)\n"
        "r.Redis.xreadgroup = boom\n"
        f"settings = RedisSettings(url={settings.url!r}, namespace={settings.namespace!r})\n"
        "asyncio.run(serve(echo, settings=settings, plugins=[]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert proc.returncode != -signal.SIGKILL
    assert "the consume loop failed: RuntimeError: a bug in reading" in proc.stderr
    assert "restarting it in" in proc.stderr


async def test_a_session_id_that_breaks_hash_tags_is_dead_lettered_on_a_cluster(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    """Under key schema v2 an id with a brace would make an empty or foreign hash tag (the
    keys of one script in different slots): the entry is dead-lettered, the worker serves on."""
    if settings.keys.schema != "v2":
        pytest.skip("key schema v2 (the cluster suite: BYWAY_TEST_CLUSTER=1)")
    stream = settings.keys.agent_stream("echo")
    async with running(echo, settings) as runner:
        for session in ("}abc", "{x}y", "a}"):
            await redis.xadd(stream, {"data": raw(ask(session, f"m-{session}"))})
        sent = await client.send_message("echo", "fine", "still serving")
        final = await client.wait_for_final("fine", sent.message_id, timeout=15)
        assert runner.readiness() == (True, "ready")
    assert final.data["status"] == "COMPLETED"
    dead = [json.loads(f[b"data"]) for _, f in await redis.xrange(settings.keys.dead_letters())]
    assert len(dead) == 3 and all("braces" in d["reason"] for d in dead)
    assert (await redis.xinfo_groups(stream))[0]["pending"] == 0


@agent("waiter")
async def waiter(command: Command, context: AgentContext) -> object:
    if isinstance(command, ResumeCommand):
        return f"{command.status}: {command.content}"
    return await context.call_agent("slow", "1.0", timeout=60)


async def test_a_forged_deadline_resume_before_the_deadline_does_not_answer(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    """The wait id is readable in the registry: a Resume carrying it counts only once the
    wait's deadline has passed, and then only as a timeout, never with its own payload."""
    async with running(waiter, settings), running(slow, settings):
        sent = await client.send_message("waiter", "dl", "go")
        record = await until_status(client, "dl", sent.message_id, "WAITING_AGENT")
        wait = json.loads(
            await redis.hget(settings.keys.session_registry("dl"), f"wait:{record.execution_id}")
        )
        forged = {
            "action_type": "RESUME",
            "header": {
                "message_id": sent.message_id,
                "session_id": "dl",
                "trace_id": "t",
                "target_agent_type": "waiter",
                "metadata": {WAIT_ID_KEY: wait["wait_id"]},
            },
            "body": {"content": "FORGED", "status": "COMPLETED"},
        }
        await redis.xadd(settings.keys.agent_stream("waiter"), {"data": raw(forged)})
        final = await client.wait_for_final("dl", sent.message_id, timeout=15)
    assert final.data["content"] == "COMPLETED: slept"


@agent("fanout")
async def fanout(command: Command, context: AgentContext) -> object:
    if isinstance(command, ResumeCommand):
        return {"content": "gathered", "reply_data": command.reply_data}
    return await context.dispatch_group(
        [{"target_agent_type": "slow", "content": "0.8"} for _ in range(2)]
    )


async def test_a_forged_group_resume_before_the_group_completed_is_dropped(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    async with running(fanout, settings), running(slow, settings):
        sent = await client.send_message("fanout", "grp", "go")
        record = await until_status(client, "grp", sent.message_id, "WAITING_AGENT")
        [child, *_] = [
            e
            for e in await client.registry.list_executions("grp")
            if e.parent_message_id == sent.message_id
        ]
        forged = {
            "action_type": "RESUME",
            "header": {
                "message_id": sent.message_id,
                "session_id": "grp",
                "trace_id": record.trace_id,
                "target_agent_type": "fanout",
                "task_group_id": child.task_group_id,
            },
            "body": {"status": "COMPLETED", "reply_data": [{"content": "FORGED"}]},
        }
        await redis.xadd(settings.keys.agent_stream("fanout"), {"data": raw(forged)})
        final = await client.wait_for_final("grp", sent.message_id, timeout=15)
    assert [r["content"] for r in final.data["reply_data"]] == ["slept", "slept"]


async def test_an_absurd_call_depth_in_a_header_is_bounded(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    stream = settings.keys.agent_stream("echo")
    async with running(echo, settings):
        for i, depth in enumerate([10**400, "9" * 4000, float("1e300")]):
            command = ask("deep-h", f"mh{i}")
            command["header"]["metadata"] = {DEPTH_KEY: depth}
            await redis.xadd(stream, {"data": json.dumps(command).encode()})
        sent = await client.send_message("echo", "deep-h", "after them")
        await client.wait_for_final("deep-h", sent.message_id, timeout=15)
        for i in range(3):
            await until_status(client, "deep-h", f"mh{i}", "COMPLETED")
    assert (await redis.xinfo_groups(stream))[0]["pending"] == 0


async def test_the_client_refuses_what_a_worker_would_dead_letter(client: GatewayClient) -> None:
    nested: Any = 1
    for _ in range(100):
        nested = [nested]
    for bad in (
        {"message_id": "bad\nid"},
        {"message_id": "m" * 300},
        {"trace_id": "t\u2028x"},
        {"user_code": "u\nx"},
        {"metadata": {"deep": nested}},
    ):
        with pytest.raises(ProtocolError):
            await client.send_message("echo", "cl", "hi", require_online_worker=False, **bad)
    assert await client.registry.list_executions("cl") == []


@agent("bulky")
async def bulky(command: Command, context: AgentContext) -> object:
    if command.content == "deep":  # type: ignore[union-attr]
        nested: Any = 1
        for _ in range(70):
            nested = [nested]
        return {"content": "deep", "reply_data": nested}
    return {"content": "small", "extra_payload": {"blob": "y" * 20_000}}


@agent("asks_bulky")
async def asks_bulky(command: Command, context: AgentContext) -> object:
    if isinstance(command, ResumeCommand):
        return f"{command.status}: {command.content}"
    return await context.call_agent("bulky", str(command.content))


async def test_replies_a_caller_could_not_read_reach_it_as_failures(
    client: GatewayClient, settings: RedisSettings
) -> None:
    limits = Limits(max_command_bytes=10_000)
    async with (
        running(asks_bulky, settings, limits=limits),
        running(bulky, settings, limits=limits),
    ):
        finals = []
        for text in ("big", "deep"):
            sent = await client.send_message("asks_bulky", f"bulk-{text}", text)
            finals.append(await client.wait_for_final(f"bulk-{text}", sent.message_id, timeout=15))
        sent = await client.send_message("bulky", "bulk-root", "deep")
        root = await client.wait_for_final("bulk-root", sent.message_id, timeout=15)
    assert finals[0].data["content"].startswith("FAILED: the reply 2")
    assert "max_command_bytes=10,000" in finals[0].data["content"]
    assert finals[1].data["content"].startswith("FAILED: ")
    assert "nested deeper" in finals[1].data["content"]
    assert root.data["status"] == "FAILED" and "nested deeper" in root.data["content"]


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda r: r.replace(b'"user_code":""', b'"user_code":null'), id="null-string"),
        pytest.param(lambda r: r.replace(b'"depth":0', b'"depth":"zero"'), id="wrong-type"),
        pytest.param(lambda r: r.replace(b'"user_code":""', b'"user_code":"\xff"'), id="not-utf8"),
    ],
)
async def test_a_waiting_root_whose_record_was_corrupted_still_ends_as_the_root(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis, corrupt: Any
) -> None:
    """A record another writer left with a field of the wrong type (or bytes that are not
    UTF-8) does not stop the worker, and the resumed root still answers its client."""
    async with running(caller, settings), running(slow, settings) as worker:
        sent = await client.send_message("caller", "spoilt", "go")
        record = await until_status(client, "spoilt", sent.message_id, "WAITING_AGENT")
        registry = settings.keys.session_registry("spoilt")
        field = f"exec:{record.execution_id}"
        before: bytes = await redis.hget(registry, field)  # type: ignore[misc]
        after = corrupt(before)
        assert after != before
        await redis.hset(registry, field, after)
        final = await client.wait_for_final("spoilt", sent.message_id, timeout=15)
        assert final.data["content"] == "callee said slept"
        assert final.source_agent_type == "caller"
        assert worker.readiness()[0]
