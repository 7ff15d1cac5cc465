"""Chaos: workers are SIGKILLed and replaced throughout; nothing is lost, nothing ends twice."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import time
from collections import Counter

import pytest
import redis.asyncio as aioredis

from byway import EventType, GatewayClient, RedisSettings
from byway.protocol import decode_event
from tests.conftest import spawn_worker, stop_process, wait_online

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(300)]

TASKS = 500
SESSIONS = 50
WORKERS = 3
ARGS = ("--lease-seconds", "1", "--max-deliveries", "5", "--concurrency", "20")


async def test_random_kills_lose_nothing(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    rng = random.Random(20261121)
    procs: list[subprocess.Popen[bytes]] = [
        spawn_worker("tests.agents.basic:chaos", settings, *ARGS) for _ in range(WORKERS)
    ]
    kills = 0
    try:
        await wait_online(client, "chaos", count=WORKERS)
        sent = {}
        for i in range(TASKS):
            seconds = rng.choice(["0", "0.05", "0.2", "0.5", "1.0"])
            s = await client.send_message("chaos", f"chaos-{i % SESSIONS}", seconds)
            sent[s.message_id] = s
        poison = await client.send_message("chaos", "chaos-poison", "poison")

        expected = {**sent, poison.message_id: poison}
        deadline = time.monotonic() + 180
        next_kill = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            for i, proc in enumerate(procs):  # a supervisor restarting dead workers
                if proc.poll() is not None:
                    procs[i] = spawn_worker("tests.agents.basic:chaos", settings, *ARGS)
            if time.monotonic() >= next_kill and kills < 6:
                victim = rng.randrange(WORKERS)
                if procs[victim].poll() is None:
                    procs[victim].kill()  # SIGKILL: mid-task, mid-write, wherever it is
                    kills += 1
                next_kill = time.monotonic() + rng.uniform(2.0, 4.0)
            if await _all_ended(client, expected):
                break
            await asyncio.sleep(0.5)
    finally:
        for proc in procs:
            stop_process(proc)

    finals: Counter[str] = Counter()
    ends: Counter[str] = Counter()
    status: dict[str, str] = {}
    errors: dict[str, object] = {}
    sessions = sorted({s.session_id for s in expected.values()})
    async with client.redis.pipeline(transaction=False) as pipe:
        for session in sessions:
            pipe.xrange(settings.keys.session_stream(session))
        streams = await pipe.execute()
    for entries in streams:
        for entry_id, fields in entries:
            event = decode_event(fields[b"data"], entry_id.decode())
            if event.event_type == EventType.FINAL_ANSWER:
                finals[event.message_id] += 1
                status[event.message_id] = event.data["status"]
                errors[event.message_id] = event.data.get("error")
            elif event.event_type == EventType.APP_STREAM_RESPONSE:
                ends[event.message_id] += 1
    assert kills >= 4
    missing = [m for m in expected if finals[m] == 0]
    if missing:
        stuck = [
            await client.registry.get_execution_by_message(expected[m].session_id, m)
            for m in missing
        ]
        detail = [(r.message_id, r.status, r.states, r.worker_id) for r in stuck if r]
        raise AssertionError(f"{len(missing)} task(s) never ended: {detail[:5]}")
    assert set(finals.values()) == {1} and set(ends.values()) == {1}  # exactly one end each
    failed = {m: errors.get(m) for m, st in status.items() if st != "COMPLETED"}
    assert set(failed) == {poison.message_id}, list(failed.values())[:5]
    letters = [json.loads(f[b"data"]) for _, f in await redis.xrange(settings.keys.dead_letters())]
    assert [json.loads(x["raw"])["header"]["message_id"] for x in letters] == [poison.message_id]


async def _all_ended(client: GatewayClient, expected: dict) -> bool:  # type: ignore[type-arg]
    keys = client.keys
    async with client.redis.pipeline(transaction=False) as pipe:
        for s in expected.values():
            pipe.hget(keys.session_registry(s.session_id), f"exec:{s.execution_id}")
        raws = await pipe.execute()
    return all(raw and json.loads(raw)["status"] in ("COMPLETED", "FAILED") for raw in raws)
