"""Nothing is lost: kill workers and see every task end exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
import redis.asyncio as aioredis

from byway import EventType, GatewayClient, RedisSettings
from tests.conftest import spawn_worker, stop_process, wait_online

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


async def running_on(client: GatewayClient, session: str, message_id: str) -> str:
    for _ in range(400):
        record = await client.registry.get_execution_by_message(session, message_id)
        if record and record.status == "RUNNING":
            return record.worker_id
        await asyncio.sleep(0.025)
    raise AssertionError("never started")


async def finals(client: GatewayClient, session: str) -> list[dict]:  # type: ignore[type-arg]
    events = [e async for e in client.stream(session, idle_timeout=0.3, block_ms=100)]
    return [e.data for e in events if e.event_type == EventType.FINAL_ANSWER]


async def test_a_long_task_keeps_its_lease_and_survives_a_kill(
    client: GatewayClient, settings: RedisSettings
) -> None:
    ids = ["keeper-a", "keeper-b"]
    procs = {
        w: spawn_worker("tests.agents.basic:slow", settings, "--lease-seconds", "1", worker_id=w)
        for w in ids
    }
    try:
        await wait_online(client, "slow", count=2)
        sent = await client.send_message("slow", "long-s", "6")
        owner = await running_on(client, "long-s", sent.message_id)
        await asyncio.sleep(4)  # four leases: a live owner keeps its task
        record = await client.registry.get_execution_by_message("long-s", sent.message_id)
        assert record and record.attempts == 1 and record.worker_id == owner
        procs[owner].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        final = await client.wait_for_final("long-s", sent.message_id, timeout=30)
        took = time.monotonic() - killed_at
    finally:
        for proc in procs.values():
            stop_process(proc)
    assert final.data["status"] == "COMPLETED"
    record = await client.registry.get_execution_by_message("long-s", sent.message_id)
    assert record and record.attempts == 2
    survivor = next(w for w in ids if w != owner)
    assert record.worker_id == survivor
    assert took < 2 * 1 + 6 + 4  # claim threshold (two leases) + the task again + slack
    assert len(await finals(client, "long-s")) == 1  # exactly one end


async def test_a_task_that_keeps_killing_workers_is_dead_lettered(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    args = ("--lease-seconds", "1", "--max-deliveries", "2")
    procs = [spawn_worker("tests.agents.basic:crasher", settings, *args) for _ in range(2)]
    try:
        await wait_online(client, "crasher", count=2)
        poison = await client.send_message("crasher", "poison-s", "poison")
        healthy = await client.send_message("crasher", "healthy-s", "ok")
        deadline = time.monotonic() + 60
        final = None
        while final is None and time.monotonic() < deadline:
            for i, proc in enumerate(procs):  # a supervisor restarting dead workers
                if proc.poll() is not None:
                    procs[i] = spawn_worker("tests.agents.basic:crasher", settings, *args)
            got = await finals(client, "poison-s")
            final = got[0] if got else None
    finally:
        for proc in procs:
            stop_process(proc)
    assert final is not None, "the poisonous task never ended"
    assert final["status"] == "FAILED" and final["error"]["type"] == "DeadLettered"
    [(_, fields)] = await redis.xrange(settings.keys.dead_letters())
    entry = json.loads(fields[b"data"])
    assert entry["deliveries"] == 3 and "max_deliveries=2" in entry["reason"]
    assert json.loads(entry["raw"])["header"]["message_id"] == poison.message_id
    [ok] = await finals(client, "healthy-s")
    assert ok["status"] == "COMPLETED" and healthy.message_id


async def test_a_restarted_worker_takes_back_its_own_tasks(
    client: GatewayClient, settings: RedisSettings
) -> None:
    args = ("--lease-seconds", "1")
    proc = spawn_worker("tests.agents.basic:slow", settings, *args, worker_id="phoenix")
    try:
        await wait_online(client, "slow")
        sent = await client.send_message("slow", "phoenix-s", "1.5")
        await running_on(client, "phoenix-s", sent.message_id)
        proc.kill()
        proc.wait()
        await asyncio.sleep(1.2)  # the dead process's lease lapses
        proc = spawn_worker("tests.agents.basic:slow", settings, *args, worker_id="phoenix")
        final = await client.wait_for_final("phoenix-s", sent.message_id, timeout=20)
    finally:
        stop_process(proc)
    assert final.data["status"] == "COMPLETED"
    record = await client.registry.get_execution_by_message("phoenix-s", sent.message_id)
    assert record and record.attempts == 2 and record.worker_id == "phoenix"


async def test_a_stopping_worker_hands_back_what_it_could_not_finish(
    client: GatewayClient, settings: RedisSettings
) -> None:
    lease = ("--lease-seconds", "5")
    leaving = spawn_worker("tests.agents.basic:slow", settings, *lease, "--drain-timeout", "0.3")
    try:
        await wait_online(client, "slow")
        sent = await client.send_message("slow", "handback-s", "2")
        await running_on(client, "handback-s", sent.message_id)
        staying = spawn_worker("tests.agents.basic:slow", settings, *lease)
        await wait_online(client, "slow", count=2)
        stopped_at = time.monotonic()
        assert stop_process(leaving) == 0
        final = await client.wait_for_final("handback-s", sent.message_id, timeout=30)
        took = time.monotonic() - stopped_at
    finally:
        stop_process(leaving)
        stop_process(staying)
    assert final.data["status"] == "COMPLETED"
    assert took < 5 + 2 + 2  # taken over within a heartbeat, not after two leases (10 s)
