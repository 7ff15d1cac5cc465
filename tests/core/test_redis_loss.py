"""Redis loses its data (a restart without persistence, a failover to an empty replica, a
flush): running workers put back what they keep there and serve again."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import pytest
import redis.asyncio as aioredis

from byway import GatewayClient, RedisSettings, SendMessageResponse
from tests.agents.basic import echo
from tests.conftest import (
    private_redis,
    run_cli,
    running,
    spawn_worker,
    stop_process,
    wait_online,
)

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


async def wipe(redis: aioredis.Redis, namespace: str) -> int:
    """Delete every key of the namespace (never the server's other keys): one by one, so
    that it works on a cluster too, whatever the keys' slots."""
    keys = [k async for k in redis.scan_iter(match=f"{namespace}:*", count=1000)]
    for key in keys:
        await redis.unlink(key)
    return len(keys)


async def send_when_served(
    client: GatewayClient, session: str, text: str, timeout: float = 30
) -> SendMessageResponse:
    """Send once a worker of ``echo`` is online again (polls; fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        sent = await client.send_message("echo", session, text)
        if sent.success or sent.error_code != "AGENT_TYPE_UNAVAILABLE":
            return sent
        if time.monotonic() > deadline:
            raise AssertionError(f"no worker of echo came back within {timeout}s: {sent.error}")
        await asyncio.sleep(0.1)


async def test_two_worker_processes_serve_again_after_their_namespace_is_wiped(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    ids = ["wiped-a", "wiped-b"]
    workers = [spawn_worker("tests.agents.basic:echo", settings, worker_id=w) for w in ids]
    try:
        await wait_online(client, "echo", count=2)
        before = await client.send_message("echo", "wipe-s", "before")
        first = await client.wait_for_final("wipe-s", before.message_id, timeout=20)
        assert first.data["content"] == "before"

        assert await wipe(redis, settings.namespace) > 0
        # the workers notice (a read answers NOGROUP, a heartbeat finds its lease and
        # membership gone) and put everything back; polled, whatever it takes
        await wait_online(client, "echo", count=2, timeout=30)
        status = run_cli(settings, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert sorted(w["worker_id"] for w in json.loads(status.stdout)["workers"]) == ids

        sent = run_cli(settings, "send", "echo", "after the wipe", "--session", "wipe-s2",
                   "--follow", "--json")  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        finals = [json.loads(line) for line in sent.stdout.splitlines()]
        assert [f["data"]["content"] for f in finals if f["event_type"] == "finalAnswer"] == [
            "after the wipe"
        ]
        many = [await client.send_message("echo", f"wipe-m{i}", f"m{i}") for i in range(10)]
        answers = [
            await client.wait_for_final(f"wipe-m{i}", m.message_id, timeout=20)
            for i, m in enumerate(many)
        ]
    finally:
        codes = [stop_process(w) for w in workers]
    assert [a.data["content"] for a in answers] == [f"m{i}" for i in range(10)]
    assert all(a.data["status"] == "COMPLETED" for a in answers)
    assert codes == [0, 0]


async def test_a_restart_without_persistence_is_repaired_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On a Redis of this test's own: its data and its scripts go (SCRIPT FLUSH, as a
    restart without persistence does); the worker re-creates its groups, lease and
    membership, says so in one WARNING, and its scripts load again on NOSCRIPT."""
    caplog.set_level(logging.WARNING, logger="byway")
    with private_redis() as url:
        settings = RedisSettings(url=url, namespace=f"bwt{uuid.uuid4().hex[:10]}")
        redis = settings.client()
        try:
            async with (
                running(echo, settings, plugins=[], block_ms=200) as runner,
                GatewayClient(settings=settings) as client,
            ):
                sent = await client.send_message("echo", "loss-s", "one")
                await client.wait_for_final("loss-s", sent.message_id, timeout=10)
                caplog.clear()
                await wipe(redis, settings.namespace)
                await redis.script_flush()
                sent = await send_when_served(client, "loss-s", "two")
                final = await client.wait_for_final("loss-s", sent.message_id, timeout=10)
                await asyncio.sleep(runner.config.lease_seconds / 3 + 0.5)  # one more heartbeat
                assert await client.registry.workers_of("echo") == [runner.worker.worker_id]
        finally:
            await redis.aclose()
    assert final.data["content"] == "two" and final.data["status"] == "COMPLETED"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    lost = [w for w in warnings if "Redis had lost" in w]
    assert len(lost) == 1, warnings
    assert "consumer group" in lost[0] and "registry membership" in lost[0]
