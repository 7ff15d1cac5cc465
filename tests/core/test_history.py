"""History: both stores pass the conformance suite; root tasks see their session's turns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from byway import GatewayClient, InMemoryHistoryStore, RedisHistoryStore, RedisSettings
from byway.testing import HistoryStoreSuite
from tests.agents.plugged import remember
from tests.conftest import running

pytestmark = [pytest.mark.redis]


class TestRedisHistoryStore(HistoryStoreSuite):
    @pytest.fixture
    async def history_store(
        self, settings: RedisSettings, redis: aioredis.Redis
    ) -> AsyncIterator[RedisHistoryStore]:
        yield RedisHistoryStore(redis, settings.keys)


class TestInMemoryHistoryStore(HistoryStoreSuite):
    @pytest.fixture
    def history_store(self) -> InMemoryHistoryStore:
        return InMemoryHistoryStore()


async def test_redis_history_is_capped(settings: RedisSettings, redis: aioredis.Redis) -> None:
    from byway.history import HistoryEntry

    store = RedisHistoryStore(redis, settings.keys, max_entries=5)
    for i in range(12):
        await store.append("capped", [HistoryEntry(role="user", content=str(i))])
    assert [t.content for t in await store.list("capped", limit=50)] == [
        "7", "8", "9", "10", "11",
    ]  # fmt: skip
    assert 0 < await redis.ttl(settings.keys.session_history("capped")) <= store.ttl_seconds


async def test_a_root_task_gets_its_sessions_history(
    client: GatewayClient, settings: RedisSettings
) -> None:
    async with running(remember, settings):
        first = await client.send_message("remember", "hist-s", "one")
        await client.wait_for_final("hist-s", first.message_id)
        second = await client.send_message("remember", "hist-s", "two")
        final = await client.wait_for_final("hist-s", second.message_id)
        other = await client.send_message("remember", "hist-other", "three")
        elsewhere = await client.wait_for_final("hist-other", other.message_id)
    assert final.data["reply_data"]["history"] == [["user", "one"], ["assistant", "heard one"]]
    assert elsewhere.data["reply_data"]["history"] == []


async def test_history_can_live_in_another_store_and_be_turned_off(
    client: GatewayClient, settings: RedisSettings
) -> None:
    from byway import Plugin, PluginBuildContext, PluginManifest

    store = InMemoryHistoryStore()

    class MemoryHistory(Plugin):
        manifest = PluginManifest("memory-history")

        async def setup(self, ctx: PluginBuildContext) -> None:
            ctx.set_history_store(store)

    async with running(remember, settings, plugins=[MemoryHistory()]):
        for text in ("a", "b"):
            sent = await client.send_message("remember", "mem-s", text)
            final = await client.wait_for_final("mem-s", sent.message_id)
    assert final.data["reply_data"]["history"] == [["user", "a"], ["assistant", "heard a"]]
    assert [t.content for t in await store.list("mem-s")] == ["a", "heard a", "b", "heard b"]
    async with running(remember, settings, history_limit=0):
        sent = await client.send_message("remember", "off-s", "x")
        await client.wait_for_final("off-s", sent.message_id)
        sent = await client.send_message("remember", "off-s", "y")
        final = await client.wait_for_final("off-s", sent.message_id)
    assert final.data["reply_data"]["history"] == []


async def test_a_task_that_waits_writes_each_turn_once(
    client: GatewayClient, settings: RedisSettings
) -> None:
    """A root that calls an agent, and one that asks the user: the session's history has
    the user's message, the agent's question, the user's answer and the final answer,
    each once, and nothing a callee or deadline said."""
    from tests.agents.plugged import callee, caller, prompted

    store = RedisHistoryStore(client.redis, settings.keys)
    async with (
        running(callee, settings, plugins=[]),
        running(caller, settings, plugins=[]),
        running(prompted, settings, plugins=[]),
    ):
        sent = await client.send_message("caller", "calls-h", "go")
        await client.wait_for_final("calls-h", sent.message_id, timeout=15)
        asking = await client.send_message("prompted", "asks-h", "ask")
        for _ in range(200):
            turns = await store.list("asks-h")
            if turns:
                break
            await asyncio.sleep(0.05)
        await client.resume("asks-h", asking.message_id, "yes")
        await client.wait_for_final("asks-h", asking.message_id, timeout=15)
    assert [(t.role, t.content) for t in await store.list("calls-h")] == [
        ("user", "go"),
        ("assistant", "callee said hi"),
    ]
    assert [(t.role, t.content) for t in await store.list("asks-h")] == [
        ("user", "ask"),
        ("assistant", "go on?"),
        ("user", "yes"),
        ("assistant", "<no config>"),
    ]


async def test_a_history_store_that_hangs_holds_no_task(
    client: GatewayClient, settings: RedisSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """Reads and appends of a store other than Redis are bounded: the task runs without
    its history, its end is written, and the timeout is one warning."""
    import logging

    from byway import Plugin, PluginBuildContext, PluginManifest
    from byway.history import HistoryEntry

    class Hanging(InMemoryHistoryStore):
        async def list(self, session_id: str, limit: int = 50) -> list[HistoryEntry]:
            await asyncio.Event().wait()
            return []

        async def append(self, session_id: str, entries: list[HistoryEntry]) -> None:
            await asyncio.Event().wait()

    class HangingHistory(Plugin):
        manifest = PluginManifest("hanging-history")

        async def setup(self, ctx: PluginBuildContext) -> None:
            ctx.set_history_store(Hanging())

    caplog.set_level(logging.DEBUG, logger="byway.worker")
    async with running(remember, settings, plugins=[HangingHistory()], history_timeout_seconds=0.2):
        for text in ("a", "b"):
            sent = await client.send_message("remember", "hang-s", text)
            final = await client.wait_for_final("hang-s", sent.message_id, timeout=5)
            assert final.data["status"] == "COMPLETED"
            assert final.data["reply_data"]["history"] == []
    slow = [r for r in caplog.records if "took more than" in r.getMessage()]
    assert len(slow) == 4  # each task's read and write
    assert [r.levelno for r in slow].count(logging.WARNING) == 1
