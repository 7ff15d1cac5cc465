"""What the runs tests run against: ``byway serve`` and worker processes of
``tests.agents.lg_api_graphs:agent`` on a namespace of their own, with two tenants' keys."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from langgraph_sdk import get_client

from byway import GatewayClient, RedisSettings
from tests.conftest import spawn_server, spawn_worker, stop_process, wait_online

GRAPH = "tests.agents.lg_api_graphs:agent"
KEY_A = "key-of-tenant-a-0123456789"
KEY_B = "key-of-tenant-b-9876543210"
API_KEYS = f"tenant-a={KEY_A},tenant-b={KEY_B}"
#: the first human message of a run of each path of the graph
HI = {"messages": [{"role": "user", "content": "hi"}]}
ASK = {"messages": [{"role": "user", "content": "ask before sending"}]}
CRAWL = {"messages": [{"role": "user", "content": "crawl"}]}
EXPLODE = {"messages": [{"role": "user", "content": "explode"}]}


@dataclass
class Stack:
    settings: RedisSettings
    url: str
    server: subprocess.Popen[bytes]
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def sdk(self, key: str = KEY_A) -> Any:
        return get_client(url=self.url, api_key=key)

    def http(self, key: str | None = KEY_A) -> httpx.AsyncClient:
        headers = {"X-Api-Key": key} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=60)

    def byway(self) -> GatewayClient:
        return GatewayClient(settings=self.settings)


async def _online(settings: RedisSettings, count: int) -> None:
    async with GatewayClient(settings=settings) as client:
        await wait_online(client, "agent", count)


def _clean(settings: RedisSettings) -> None:
    async def clean() -> None:
        redis = settings.client()
        try:
            keys = [k async for k in redis.scan_iter(match=f"{settings.namespace}:*", count=1000)]
            for i in range(0, len(keys), 500):
                await redis.delete(*keys[i : i + 500])
        finally:
            await redis.aclose()

    asyncio.run(clean())


@contextlib.contextmanager
def stack(redis_url: str, workers: int = 2) -> Iterator[Stack]:
    """A server and ``workers`` worker processes of the graph (ids ``lg-0-...``...)."""
    settings = RedisSettings(url=redis_url, namespace=f"bwt{uuid.uuid4().hex[:10]}")
    suffix = uuid.uuid4().hex[:6]
    procs = {
        f"lg-{i}-{suffix}": spawn_worker(
            GRAPH, settings, "--agent-type", "agent", worker_id=f"lg-{i}-{suffix}"
        )
        for i in range(workers)
    }
    server: subprocess.Popen[bytes] | None = None
    try:
        server, url = spawn_server(settings, env={"BYWAY_SERVER_API_KEYS": API_KEYS})
        asyncio.run(_online(settings, workers))
        yield Stack(settings, url, server, procs)
    finally:
        for proc in procs.values():
            stop_process(proc)
        if server is not None:
            stop_process(server)
        _clean(settings)


def new_thread() -> str:
    return str(uuid.uuid4())


async def collect(parts: AsyncIterator[Any]) -> list[Any]:
    return [part async for part in parts]
