"""Signed commands (``BYWAY_SIGNING_KEYS``): workers refuse what does not verify.

Real Redis, real runners (in this process, each with its own signer, or worker processes
with the variable set). A refused entry is dead-lettered with its reason and acknowledged;
what a party without the key writes to a control stream never acts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from byway import (
    AskAgentCommand,
    CancelMode,
    CancelTaskCommand,
    ConfigurationError,
    EventType,
    GatewayClient,
    GatewayWorker,
    MessageHeader,
    RedisSettings,
    ResumeCommand,
    WorkerRunner,
)
from byway.protocol import decode_command, encode_command, new_id, now_ms
from byway.signing import Signer
from byway.worker import FunctionWorker
from tests.agents import basic, flows
from tests.conftest import (
    local_cluster,
    running,
    spawn_worker,
    stop_process,
    until_status,
    wait_online,
)

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

K1 = "k1-" + "a" * 29
K2 = "k2-" + "b" * 29


def fresh(worker: FunctionWorker) -> FunctionWorker:
    """The same agent under a worker id of its own (several runners of one type)."""
    name = worker.get_agent_types()[0]
    return FunctionWorker(worker.handler, [name], worker_id=f"{name}-{uuid.uuid4().hex[:6]}")


def signed_runner(
    worker: GatewayWorker, settings: RedisSettings, signer: Signer, **config: Any
) -> contextlib.AbstractAsyncContextManager[WorkerRunner]:
    return running(worker, settings, [], signer=signer, **config)


@contextlib.asynccontextmanager
async def signed_client(settings: RedisSettings, *keys: str) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(settings=settings, signer=Signer(list(keys))) as client:
        yield client


def by_hand(key: str, stream: str, data: bytes, ts: int) -> bytes:
    """Sign ``data`` as docs/protocol.md describes it, with the standard library only."""
    command = json.loads(data)
    nonce = uuid.uuid4().hex[:16]
    message = json.dumps(
        ["byway-sig-1", stream, ts, nonce, command],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    mac = hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
    return json.dumps({**command, "signature": {"ts": ts, "nonce": nonce, "mac": mac}}).encode()


def ask(agent_type: str, session: str, content: str) -> AskAgentCommand:
    return AskAgentCommand(
        header=MessageHeader(
            message_id=new_id("msg"),
            session_id=session,
            trace_id=new_id("trace"),
            target_agent_type=agent_type,
        ),
        content=content,
    )


async def dead_letters(client: GatewayClient, count: int, timeout: float = 10) -> list[dict]:  # type: ignore[type-arg]
    """The dead letters once there are ``count`` of them (oldest first)."""
    for _ in range(int(timeout / 0.05)):
        letters = await client.dead_letters()
        if len(letters) >= count:
            return list(reversed(letters))
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} dead letter(s), got {await client.dead_letters()}")


async def pending(redis: aioredis.Redis, stream: str) -> int:
    info: Any = await redis.xpending(stream, "agent_engines")
    return int(info["pending"])


# -- configuration and the MAC --------------------------------------------------------------


def test_keys_and_max_age_come_from_the_environment() -> None:
    assert Signer.from_env({}) is None
    assert Signer.from_env({"BYWAY_SIGNING_KEYS": " "}) is None
    signer = Signer.from_env({"BYWAY_SIGNING_KEYS": f"{K2}, {K1}"})
    assert signer is not None and signer.max_age_ms == 300_000
    timed = Signer.from_env({"BYWAY_SIGNING_KEYS": K1, "BYWAY_SIGNING_MAX_AGE_SECONDS": "60"})
    assert timed is not None and timed.max_age_ms == 60_000
    bad = [
        ({"BYWAY_SIGNING_KEYS": "short"}, "BYWAY_SIGNING_KEYS: key 1 has 5 characters"),
        ({"BYWAY_SIGNING_KEYS": f"{K1},,{K2}"}, "BYWAY_SIGNING_KEYS: expected a comma list"),
        (
            {"BYWAY_SIGNING_KEYS": K1, "BYWAY_SIGNING_MAX_AGE_SECONDS": "soon"},
            "BYWAY_SIGNING_MAX_AGE_SECONDS: expected a number of seconds",
        ),
        (
            {"BYWAY_SIGNING_KEYS": K1, "BYWAY_SIGNING_MAX_AGE_SECONDS": "0"},
            "BYWAY_SIGNING_MAX_AGE_SECONDS: expected a number of seconds in",
        ),
    ]
    for env, message in bad:
        with pytest.raises(ConfigurationError, match=message):
            Signer.from_env(env)


def test_the_mac_is_the_documented_one_and_survives_re_encoding() -> None:
    stream = "ns:ctrl:agent_type:echo"
    command = encode_command(ask("echo", "s-é", "héllo"))
    signer = Signer([K1])
    signed = signer.sign(command, stream)
    entry_id = f"{now_ms()}-0"
    assert signer.verify(signed, stream, entry_id) == ""
    assert decode_command(signed) == decode_command(command)  # the field is tolerated
    # signed by hand per docs/protocol.md: verifies too
    assert signer.verify(by_hand(K1, stream, command, now_ms()), stream, entry_id) == ""
    # a relay that re-encodes (other key order, spaces, escaped non-ASCII) breaks nothing
    parsed = json.loads(signed)
    relayed = json.dumps(dict(reversed(list(parsed.items()))), indent=2).encode()
    assert signer.verify(relayed, stream, entry_id) == ""
    # re-signing replaces the signature
    assert json.loads(signer.sign(signed, stream))["signature"] != parsed["signature"]

    tampered = json.loads(signed)
    tampered["body"]["content"] = "rm -rf /"
    reasons = [
        signer.verify(json.dumps(tampered).encode(), stream, entry_id),
        signer.verify(signed, "ns:ctrl:agent_type:admin", entry_id),  # copied elsewhere
        Signer([K2]).verify(signed, stream, entry_id),
        signer.verify(command, stream, entry_id),
        signer.verify(b"not json", stream, entry_id),
        signer.verify(json.dumps({**parsed, "signature": {"ts": "x"}}).encode(), stream, entry_id),
    ]
    assert [r.split(":")[0] for r in reasons] == [
        "bad signature",
        "bad signature",
        "bad signature",
        "unsigned",
        "unsigned",
        "bad signature",
    ]
    assert Signer([K2, K1]).verify(signed, stream, entry_id) == ""  # rotation: all verify
    stale = by_hand(K1, stream, command, now_ms() - 400_000)  # signed 400 s ago
    assert signer.verify(stale, stream, entry_id).startswith("expired: signed 400 s before")
    # an id from the future counts as now: the signature is on time, not 400 s old
    assert signer.verify(signed, stream, f"{now_ms() + 400_000}-0") == ""
    early = f"{now_ms() - 60_000}-0"
    assert signer.verify(signed, stream, early).startswith("expired: signed 60 s after")


# -- workers refuse what does not verify -------------------------------------------------


async def test_unsigned_and_tampered_commands_are_dead_lettered_and_signed_ones_run(
    settings: RedisSettings, redis: aioredis.Redis
) -> None:
    signer = Signer([K1])
    keys = settings.keys
    stream = keys.agent_stream("echo")
    async with (
        signed_client(settings, K1) as client,
        signed_runner(fresh(basic.echo), settings, signer),
    ):
        unsigned = ask("echo", "forged", "unsigned ask")
        await redis.xadd(stream, {"data": encode_command(unsigned)})
        tampered = json.loads(signer.sign(encode_command(ask("echo", "forged", "ok")), stream))
        tampered["body"]["content"] = "tampered ask"
        await redis.xadd(stream, {"data": json.dumps(tampered)})
        by_hand_ask = ask("echo", "by-hand", "signed by hand")
        await redis.xadd(
            stream, {"data": by_hand(K1, stream, encode_command(by_hand_ask), now_ms())}
        )
        sent = await client.send_message("echo", "signed", "signed ask")

        final = await client.wait_for_final("signed", sent.message_id, timeout=15)
        hand_final = await client.wait_for_final(
            "by-hand", by_hand_ask.header.message_id, timeout=15
        )
        letters = await dead_letters(client, 2)
        assert await pending(redis, stream) == 0
    assert final.data["status"] == hand_final.data["status"] == "COMPLETED"
    assert hand_final.data["content"] == "signed by hand"
    assert [letter["reason"].split(":")[0] for letter in letters] == ["unsigned", "bad signature"]
    assert {letter["stream"] for letter in letters} == {stream}
    assert await client.registry.list_executions("forged") == []  # neither ran


async def test_a_forged_cancel_and_a_forged_resume_do_nothing(
    settings: RedisSettings, redis: aioredis.Redis
) -> None:
    signer = Signer([K1])
    slow, asker = fresh(basic.slow), fresh(flows.chain_c)
    async with (
        signed_client(settings, K1) as client,
        signed_runner(slow, settings, signer),
        signed_runner(asker, settings, signer),
    ):
        task = await client.send_message("slow", "victim", "1.5")
        await until_status(client, "victim", task.message_id, "RUNNING")
        cancel = CancelTaskCommand(
            header=MessageHeader(
                message_id=new_id("msg"), session_id="victim", trace_id=new_id("trace")
            ),
            target_message_id=task.message_id,
            cancel_mode=CancelMode.FORCE,
        )
        own = settings.keys.worker_stream(slow.worker_id)
        await redis.xadd(own, {"data": encode_command(cancel)})
        await redis.xadd(own, {"data": Signer([K2]).sign(encode_command(cancel), own)})

        question = await client.send_message("chain_c", "asked", "ask:deploy?")
        await until_status(client, "asked", question.message_id, "WAITING_USER")
        forged = ResumeCommand(
            header=MessageHeader(
                message_id=question.message_id,
                session_id="asked",
                trace_id=new_id("trace"),
                target_agent_type="chain_c",
            ),
            content="forged yes",
        )
        await redis.xadd(settings.keys.agent_stream("chain_c"), {"data": encode_command(forged)})
        letters = await dead_letters(client, 3)
        assert (await until_status(client, "victim", task.message_id, "COMPLETED")).status
        record = await client.registry.get_execution_by_message("asked", question.message_id)
        assert record is not None and record.status == "WAITING_USER"
        await client.resume("asked", question.message_id, "yes")  # signed: answers
        final = await client.wait_for_final("asked", question.message_id, timeout=15)
    assert final.data["content"] == "C:yes"
    assert sorted(letter["reason"].split(":")[0] for letter in letters) == [
        "bad signature",
        "unsigned",
        "unsigned",
    ]


async def test_a_replayed_entry_is_refused_and_runs_once(
    settings: RedisSettings, redis: aioredis.Redis
) -> None:
    signer = Signer([K1])
    stream = settings.keys.agent_stream("echo")
    async with (
        signed_client(settings, K1) as client,
        signed_runner(fresh(basic.echo), settings, signer),
        signed_runner(fresh(basic.slow), settings, signer),
    ):
        sent = await client.send_message("echo", "replay", "once")
        await client.wait_for_final("replay", sent.message_id, timeout=15)
        entries: Any = await redis.xrange(stream)
        [(_, fields)] = entries
        await redis.xadd(stream, fields)  # the same signed command, a second entry
        # and copied to another agent type's stream: signed for echo's, not slow's
        await redis.xadd(settings.keys.agent_stream("slow"), fields)
        letters = await dead_letters(client, 2)
        assert await pending(redis, stream) == 0
    assert {letter["stream"]: letter["reason"].split(":")[0] for letter in letters} == {
        stream: "replayed",
        settings.keys.agent_stream("slow"): "bad signature",
    }
    events = [e async for e in client.stream("replay", idle_timeout=0.3, block_ms=100)]
    assert sum(e.event_type == EventType.FINAL_ANSWER for e in events) == 1
    record = await client.registry.get_execution_by_message("replay", sent.message_id)
    assert record is not None and record.states == ["QUEUED", "RUNNING", "COMPLETED"]


async def test_an_expired_signature_is_refused(
    settings: RedisSettings, redis: aioredis.Redis
) -> None:
    stream = settings.keys.agent_stream("echo")
    async with (
        signed_client(settings, K1) as client,
        signed_runner(fresh(basic.echo), settings, Signer([K1], max_age_seconds=60)),
    ):
        old = ask("echo", "expired", "signed long ago")
        signed_at = now_ms() - 120_000  # two minutes ago; 60 s allowed (+30 s of skew)
        await redis.xadd(stream, {"data": by_hand(K1, stream, encode_command(old), signed_at)})
        [letter] = await dead_letters(client, 1)
    assert letter["reason"].startswith("expired: signed 120 s before it was written")
    assert await client.registry.list_executions("expired") == []


async def test_key_rotation_needs_no_client_restart(settings: RedisSettings) -> None:
    """Workers move to "k2,k1" first; a client still on k1 and one already on k2 both
    work, and so do calls between a worker signing with k2 and one still signing with k1."""
    async with (
        signed_runner(fresh(flows.chain_b), settings, Signer([K2, K1])),
        signed_runner(fresh(flows.chain_c), settings, Signer([K1, K2])),
        signed_client(settings, K1) as old,
        signed_client(settings, K2, K1) as new,
        signed_client(settings, "k3-" + "c" * 29) as stranger,
    ):
        by_old = await old.send_message("chain_b", "rot-old", "0")
        by_new = await new.send_message("chain_b", "rot-new", "0")
        refused = await stranger.send_message("chain_b", "rot-x", "0")
        for session, sent in (("rot-old", by_old), ("rot-new", by_new)):
            final = await old.wait_for_final(session, sent.message_id, timeout=15)
            assert final.data["content"] == "B(C)"
        [letter] = await dead_letters(old, 1)
    assert letter["reason"].startswith("bad signature")
    record = await old.registry.get_execution_by_message("rot-x", refused.message_id)
    assert record is not None and record.status == "QUEUED"  # written by SEND, never run


async def test_a_redelivered_entry_runs_after_its_worker_is_killed(
    settings: RedisSettings, redis: aioredis.Redis
) -> None:
    env = {"BYWAY_SIGNING_KEYS": K1}
    lease = ("--lease-seconds", "1")
    first = spawn_worker("tests.agents.basic:slow", settings, *lease, env=env)
    second = None
    try:
        async with signed_client(settings, K1) as client:
            await wait_online(client, "slow")
            sent = await client.send_message("slow", "redeliver", "2")
            await until_status(client, "redeliver", sent.message_id, "RUNNING")
            first.send_signal(signal.SIGKILL)
            first.wait()
            second = spawn_worker("tests.agents.basic:slow", settings, *lease, env=env)
            final = await client.wait_for_final("redeliver", sent.message_id, timeout=30)
            assert final.data["status"] == "COMPLETED"
            record = await client.registry.get_execution_by_message("redeliver", sent.message_id)
            assert record is not None and record.attempts == 2  # the same entry, run again
            assert await client.dead_letters() == []
    finally:
        for proc in (first, second):
            if proc is not None:
                stop_process(proc)


# -- orchestration with every command signed ---------------------------------------------


class Recording(Signer):
    """A signer that also notes what each read batch held and what it refused."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self.seen: list[tuple[str, str, str]] = []  # stream, action type, reason

    async def screen(
        self, redis: Any, keys: Any, reply: Any, max_bytes: int = 1 << 30
    ) -> dict[tuple[str, str], str]:
        refused = await super().screen(redis, keys, reply, max_bytes)
        for stream_raw, entries in reply:
            stream = stream_raw.decode() if isinstance(stream_raw, bytes) else stream_raw
            for entry_id, fields in entries:
                action = json.loads(fields[b"data"])["action_type"]
                self.seen.append((stream, action, refused.get((stream, entry_id.decode()), "")))
        return refused


async def _orchestrate(settings: RedisSettings, signer: Recording) -> None:
    """call_agent, a callee's question and the user's answer, a task group, a deadline
    timeout, a cancel, a queued message handed on: every command on every control stream
    is signed, verifies, and nothing is refused."""
    workers = [
        fresh(w)
        for w in (
            flows.chain_a,
            flows.chain_b,
            flows.chain_c,
            flows.fan,
            flows.kid,
            flows.waiter,
            flows.sleeper,
        )
    ]
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(signed_client(settings, K1))
        for worker in workers:
            await stack.enter_async_context(
                signed_runner(worker, settings, signer, sweep_interval=0.1)
            )
        asked = await client.send_message("chain_a", "o-ask", "ask:ship it?")
        group = await client.send_message("fan", "o-fan", "one fail-two three")
        timed = await client.send_message("waiter", "o-wait", "go")
        doomed = await client.send_message("chain_a", "o-cancel", "30")
        first = await client.send_message("chain_c", "o-queue", "0.3")
        second = await client.send_message("chain_c", "o-queue", "0.01")
        assert second.disposition == "queued"

        question = None
        async for event in client.stream("o-ask"):
            if event.kind == "ask_user":
                question = event
                break
        assert question is not None
        await client.resume("o-ask", question.message_id, "yes")
        records = []
        for _ in range(200):
            records = await client.registry.list_executions("o-cancel")
            if any(r.target_agent_type == "chain_c" and r.status == "RUNNING" for r in records):
                break
            await asyncio.sleep(0.05)
        outcome = await client.cancel_task(doomed.message_id, "o-cancel", reason="stop")
        assert outcome.count == 3

        answers = {
            session: await client.wait_for_final(session, sent.message_id, timeout=30)
            for session, sent in (
                ("o-ask", asked),
                ("o-fan", group),
                ("o-wait", timed),
                ("o-cancel", doomed),
                ("o-queue", first),
                ("o-queue", second),
            )
        }
        assert answers["o-ask"].data["content"] == "A(B(C:yes))"
        results = answers["o-fan"].data["reply_data"]["results"]
        assert [r["status"] for r in results] == ["COMPLETED", "FAILED", "COMPLETED"]
        assert answers["o-wait"].data["content"] == "waiter resumed with TIMEOUT"
        assert answers["o-cancel"].data["status"] == "CANCELLED"
        queued = await client.wait_for_final("o-queue", second.message_id, timeout=30)
        assert queued.data["status"] == "COMPLETED"
        for session in ("o-cancel", "o-wait"):  # the cancelled and timed-out callees end
            for _ in range(200):
                rs = await client.registry.list_executions(session)
                if all(r.status in ("COMPLETED", "CANCELLED", "FAILED") for r in rs):
                    break
                await asyncio.sleep(0.05)
            assert {r.status for r in rs} <= {"COMPLETED", "CANCELLED"}, session

        assert await client.dead_letters() == []
    assert [reason for *_, reason in signer.seen if reason] == []
    k = settings.keys
    read = {(stream, action) for stream, action, _ in signer.seen}
    # what workers sent each other, each checked by the worker that read it: calls and
    # group children, callee replies and the group's Resume, the deadline's Resume, and
    # the cancels of the running C and of the sleeper its caller stopped waiting for
    assert {(k.agent_stream(t), "ASK_AGENT") for t in ("chain_b", "chain_c", "kid")} <= read
    assert {(k.agent_stream(t), "RESUME") for t in ("chain_a", "chain_b", "fan", "waiter")} <= read
    cancelled = {w.worker_id for w in workers if w.get_agent_types()[0] in ("chain_c", "sleeper")}
    assert {(k.worker_stream(w), "CANCEL_TASK") for w in cancelled} <= read


async def test_orchestration_runs_end_to_end_with_signed_commands(
    settings: RedisSettings, redis: aioredis.Redis
) -> None:
    await _orchestrate(settings, Recording([K1]))


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    if os.environ.get("BYWAY_TEST_CLUSTER"):
        pytest.skip("the whole suite runs on a cluster: the test above covers it")
    with local_cluster() as url:
        yield url


async def test_orchestration_runs_end_to_end_with_signed_commands_on_a_cluster(
    cluster_url: str,
) -> None:
    settings = RedisSettings(url=cluster_url, namespace=f"bws{uuid.uuid4().hex[:8]}")
    await _orchestrate(settings, Recording([K1]))


async def test_an_entry_id_from_the_future_does_not_expire_every_later_command(
    settings: RedisSettings, redis: aioredis.Redis
) -> None:
    """A writer may XADD with an id far ahead of now (and every later id follows it): the
    age of a signature is then counted by the worker's clock, not by that id."""
    stream = settings.keys.agent_stream("echo")
    async with (
        signed_client(settings, K1) as client,
        signed_runner(fresh(basic.echo), settings, Signer([K1])),
    ):
        await redis.xadd(stream, {"data": b"x"}, id="99999999999999-0")
        sent = await client.send_message("echo", "future", "still on time")
        final = await client.wait_for_final("future", sent.message_id, timeout=15)
    assert sent.stream_entry_id.startswith("99999999999999-")
    assert final.data["status"] == "COMPLETED"
