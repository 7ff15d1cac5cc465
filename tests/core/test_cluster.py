"""Redis Cluster: a real local 3-master cluster started from the embedded redis-server.

The whole core suite also runs on such a cluster with ``BYWAY_TEST_CLUSTER=1`` (``make
test`` does both). These tests run in every suite: they check that sessions really spread
over the nodes, that no script touches two slots, and the one path only a cluster has: a
worker that dies between a hand-on script and forwarding the message it handed on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis as sync_redis

from byway import (
    ConfigurationError,
    EventType,
    GatewayClient,
    RedisSettings,
    RunnerConfig,
    WorkerRunner,
)
from byway.protocol import decode_event
from byway.store.session import KickSessionArgs, kick_session
from byway.worker import FunctionWorker
from tests.agents.basic import echo, slow
from tests.agents.flows import fan, kid
from tests.conftest import local_cluster, running

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    with local_cluster() as url:
        yield url


@pytest.fixture
def cluster_settings(cluster_url: str) -> RedisSettings:
    return RedisSettings(url=cluster_url, namespace=f"bwc{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def cluster_client(cluster_settings: RedisSettings) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(settings=cluster_settings) as c:
        yield c


def test_a_cluster_url_means_schema_v2_and_refuses_v1() -> None:
    assert RedisSettings(url="redis+cluster://h:7000").keys.schema == "v2"
    assert RedisSettings(url="redis://h:6379").keys.schema == "v1"
    with pytest.raises(ConfigurationError, match="schema: a Redis Cluster needs key schema v2"):
        RedisSettings(url="redis+cluster://h:7000", schema="v1")


def _keys_per_node(url: str, namespace: str) -> list[int]:
    port = int(url.rsplit(":", 1)[1])
    first = sync_redis.Redis(port=port)
    nodes: dict[str, object] = first.execute_command("CLUSTER NODES")  # "host:port@bus" → info
    first.close()
    counts = []
    for address in nodes:
        host, _, rest = address.partition(":")
        node = sync_redis.Redis(host=host, port=int(rest.split("@")[0]))
        counts.append(sum(1 for _ in node.scan_iter(match=f"{namespace}:*", count=1000)))
        node.close()
    return counts


async def test_sessions_spread_over_every_node_and_run_end_to_end(
    cluster_client: GatewayClient, cluster_settings: RedisSettings, cluster_url: str
) -> None:
    sessions = [f"spread-{i}" for i in range(24)]
    async with running(echo, cluster_settings, max_concurrency=8):
        sent = [await cluster_client.send_message("echo", s, f"hi {s}") for s in sessions]
        for s, m in zip(sessions, sent, strict=True):
            final = await cluster_client.wait_for_final(s, m.message_id, timeout=30)
            assert final.data["status"] == "COMPLETED"
            assert final.data["content"] == f"hi {s}"
    # a second message waits for the session's first (one writer per session) and is
    # handed on when it ends: across slots, through the outbox
    busy = sessions[:4]
    async with running(slow, cluster_settings, max_concurrency=8):
        firsts = [await cluster_client.send_message("slow", s, "0.3") for s in busy]
        seconds = [await cluster_client.send_message("slow", s, "0.01") for s in busy]
        assert [m.disposition for m in seconds] == ["queued"] * len(busy)
        for s, first, second in zip(busy, firsts, seconds, strict=True):
            done = await cluster_client.wait_for_final(s, first.message_id, timeout=30)
            final = await cluster_client.wait_for_final(s, second.message_id, timeout=30)
            assert done.data["status"] == final.data["status"] == "COMPLETED"
            assert done.timestamp <= final.timestamp
    counts = _keys_per_node(cluster_url, cluster_settings.namespace)
    assert len(counts) == 3 and all(c > 0 for c in counts), counts


async def test_a_message_handed_on_but_never_forwarded_is_sent_by_the_sweep(
    cluster_client: GatewayClient, cluster_settings: RedisSettings
) -> None:
    """The window only a cluster has: the script that hands a session on cannot write the
    next message's control stream (another slot), so its caller forwards it afterwards. If
    the caller dies in between, the message waits at the head of the session's queue and
    the orphan sweep sends it once the session's lock lapses."""
    k = cluster_settings.keys
    redis = cluster_client.redis
    session = "lost-forward"
    async with running(slow, cluster_settings, sweep_interval=0.05):
        # a holder that will never end, so the message is queued behind it
        await redis.set(k.session_lock(session), "ghost", px=60_000)
        queued = await cluster_client.send_message("slow", session, "0.01")
        assert queued.disposition == "queued"
        await redis.delete(k.session_lock(session))
        # the hand-on a dying worker would have done: lock to the message, no forward
        args = KickSessionArgs(keyspace=k, session_id=session, lock_grace_ms=60_000, outbox=True)
        reply = await kick_session(redis, args)
        assert reply.message_id == queued.message_id
        await asyncio.sleep(1.0)
        record = await cluster_client.registry.get_execution_by_message(session, queued.message_id)
        assert record is not None and record.status == "QUEUED"  # nobody sent it
        await redis.pexpire(k.session_lock(session), 100)  # the lock lapses (grace)
        final = await cluster_client.wait_for_final(session, queued.message_id, timeout=20)
        assert final.data["status"] == "COMPLETED"
        raw = await redis.xrange(k.session_stream(session))
        events = [decode_event(fields[b"data"]) for _, fields in raw]
        finals = [e for e in events if e.event_type == EventType.FINAL_ANSWER]
        assert [f.message_id for f in finals] == [queued.message_id]  # ran exactly once
        record = await cluster_client.registry.get_execution_by_message(session, queued.message_id)
        assert record is not None and record.attempts == 1
        assert await redis.llen(k.session_queue(session)) == 0


async def test_a_group_resume_lost_with_its_worker_is_sent_by_the_taker_over(
    cluster_client: GatewayClient, cluster_settings: RedisSettings
) -> None:
    """The last child of a group ends, but its worker dies before it sends the group's
    Resume to the caller (another slot). The child's entry is acknowledged only after that
    send, so a live worker takes it over, finds it ended, reports it again and sends the
    Resume: the caller still ends, with every child's result."""
    kids = FunctionWorker(kid.handler, ["kid"], worker_id=f"kid-a-{uuid.uuid4().hex[:6]}")
    async with running(fan, cluster_settings):
        dying = WorkerRunner(kids, settings=cluster_settings, config=RunnerConfig(lease_seconds=1))
        await dying.initialize()
        consume = asyncio.create_task(dying.start(handle_signals=False))

        async def die(sends: list[object], *_: object, **__: object) -> list[object]:
            if sends:  # the Resume: the process is gone before it reaches Redis
                raise RuntimeError("the worker died here")
            return []

        dying.flow.forward = die  # type: ignore[method-assign]
        sent = await cluster_client.send_message("fan", "lost-resume", "one two")
        records = await _until_ended_kids(cluster_client, "lost-resume", 2)
        assert {r.worker_id for r in records} == {kids.worker_id}
        await asyncio.sleep(0.5)
        caller = await cluster_client.registry.get_execution_by_message(
            "lost-resume", sent.message_id
        )
        assert caller is not None and caller.status == "WAITING_AGENT"  # no Resume came
        await dying.stop()  # its lease goes with it; the child entry is still pending
        await consume
        await dying.release()
        fresh = FunctionWorker(kid.handler, ["kid"], worker_id=f"kid-b-{uuid.uuid4().hex[:6]}")
        async with running(fresh, cluster_settings, lease_seconds=1, sweep_interval=0.1):
            final = await cluster_client.wait_for_final("lost-resume", sent.message_id, timeout=30)
    assert final.data["status"] == "COMPLETED"
    results = final.data["reply_data"]["results"]
    assert [r["status"] for r in results] == ["COMPLETED", "COMPLETED"]
    assert [r["content"] for r in results] == ["ONE", "TWO"]


async def _until_ended_kids(client: GatewayClient, session: str, count: int) -> list[Any]:
    for _ in range(200):
        records = [
            r
            for r in await client.registry.list_executions(session)
            if r.target_agent_type == "kid" and r.status == "COMPLETED"
        ]
        if len(records) == count:
            return records
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} kid task(s) did not end")
