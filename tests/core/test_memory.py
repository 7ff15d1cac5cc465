"""Bounded memory: 100,000 tasks through one worker on a Redis of the test's own.

Control streams must end up holding only what is unacknowledged or recent (they are
trimmed below the oldest entry a group still needs), and Redis memory must stay within
what docs/operations.md says sessions cost.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from byway import GatewayClient, RedisSettings
from tests.agents.basic import tick
from tests.conftest import private_redis, running

pytestmark = [pytest.mark.redis, pytest.mark.standalone, pytest.mark.timeout(600)]

TASKS = 100_000
SESSIONS = 1_000
SENDERS = 32
#: docs/operations.md: a session with one task, and each further task in it (KB)
SESSION_KB, TASK_KB = 6.0, 3.4


async def _used_memory(client: GatewayClient) -> int:
    info: Any = await client.redis.info("memory")
    return int(info["used_memory"])


async def test_memory_and_control_streams_stay_bounded_over_100k_tasks() -> None:
    with private_redis() as url:
        settings = RedisSettings(url=url, namespace="mem")
        k = settings.keys
        async with (
            GatewayClient(settings=settings) as client,
            running(tick, settings, max_concurrency=100, sweep_interval=0.1) as runner,
        ):
            base = await _used_memory(client)
            started = time.monotonic()
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(TASKS):
                queue.put_nowait(i)
            longest = 0

            async def sender() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    await client.send_message("tick", f"mem-{i % SESSIONS}", "x")

            senders = [asyncio.create_task(sender()) for _ in range(SENDERS)]
            while runner.completed < TASKS:
                await asyncio.sleep(1)
                longest = max(longest, int(await client.redis.xlen(k.agent_stream("tick"))))
                done = runner.completed
                print(f"{done:>7} tasks done, {time.monotonic() - started:5.0f}s", flush=True)
                assert all(not t.done() or t.exception() is None for t in senders)
            await asyncio.gather(*senders)
            elapsed = time.monotonic() - started
            used = await _used_memory(client) - base

            # every entry is acknowledged: the next trim leaves nothing behind
            stream = k.agent_stream("tick")
            for _ in range(75):  # a trim runs every 20 sweeps (2 s here)
                if await client.redis.xlen(stream) == 0:
                    break
                await asyncio.sleep(0.2)
            assert await client.redis.xlen(stream) == 0
            pending: Any = await client.redis.xpending(stream, runner.config.consumer_group)
            assert pending["pending"] == 0
            assert runner.failed == 0

        per_session = TASKS // SESSIONS
        bound = SESSIONS * (SESSION_KB + TASK_KB * (per_session - 1)) * 1024
        print(
            f"{TASKS} tasks in {elapsed:.0f}s; Redis grew by {used / 2**20:.1f} MiB "
            f"({used / TASKS:.0f} B per task; documented bound {bound / 2**20:.1f} MiB); "
            f"longest control stream seen: {longest} entries"
        )
        assert used <= bound
