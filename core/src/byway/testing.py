"""Conformance kit: reusable test suites for history stores and plugins.

Subclass a suite in your own tests and provide its fixture; every test of the suite then
runs against your implementation (needs ``pytest`` and ``pytest-asyncio``)::

    from byway.testing import HistoryStoreSuite

    class TestMyStore(HistoryStoreSuite):
        @pytest.fixture
        async def history_store(self):
            store = MyStore(...)
            yield store
            await store.close()

    class TestMyPlugin(PluginSuite):
        @pytest.fixture
        def plugin(self):
            return MyPlugin()

The suites assert what the worker relies on, nothing about how a store keeps its data.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from typing import Any

import pytest

from byway.errors import ConfigurationError
from byway.history import HistoryEntry, HistoryStore
from byway.keys import Keys
from byway.plugins import HOOKS, Plugin, PluginBuildContext, PluginDeclined, PluginManifest

__all__ = ["HistoryStoreSuite", "PluginSuite", "build_context"]


def _session() -> str:
    return f"conformance-{uuid.uuid4().hex[:12]}"


def _turn(i: int, role: str = "user") -> HistoryEntry:
    return HistoryEntry(
        role=role,
        content=f"turn {i}",
        message_id=f"m{i}",
        agent_type="agent",
        timestamp=1_700_000_000_000 + i,
        metadata={"i": i},
    )


class HistoryStoreSuite:
    """What every :class:`~byway.history.HistoryStore` must do. Provide a
    ``history_store`` fixture; the store must keep at least 50 turns per session."""

    @pytest.mark.asyncio
    async def test_is_a_history_store(self, history_store: Any) -> None:
        assert isinstance(history_store, HistoryStore)

    @pytest.mark.asyncio
    async def test_appended_turns_come_back_oldest_first_with_every_field(
        self, history_store: Any
    ) -> None:
        session = _session()
        await history_store.append(session, [_turn(0), _turn(1, "assistant")])
        await history_store.append(session, [_turn(2)])
        turns = await history_store.list(session, limit=10)
        assert turns == [_turn(0), _turn(1, "assistant"), _turn(2)]

    @pytest.mark.asyncio
    async def test_limit_returns_the_newest_turns(self, history_store: Any) -> None:
        session = _session()
        await history_store.append(session, [_turn(i) for i in range(8)])
        assert [t.content for t in await history_store.list(session, limit=3)] == [
            "turn 5",
            "turn 6",
            "turn 7",
        ]
        assert await history_store.list(session, limit=0) == []

    @pytest.mark.asyncio
    async def test_sessions_are_separate(self, history_store: Any) -> None:
        one, two = _session(), _session()
        await history_store.append(one, [_turn(1)])
        await history_store.append(two, [_turn(2)])
        assert [t.content for t in await history_store.list(one)] == ["turn 1"]
        assert [t.content for t in await history_store.list(two)] == ["turn 2"]

    @pytest.mark.asyncio
    async def test_an_unknown_session_has_no_history(self, history_store: Any) -> None:
        assert await history_store.list(_session()) == []

    @pytest.mark.asyncio
    async def test_delete_forgets_the_session_only(self, history_store: Any) -> None:
        gone, kept = _session(), _session()
        await history_store.append(gone, [_turn(1)])
        await history_store.append(kept, [_turn(2)])
        await history_store.delete(gone)
        assert await history_store.list(gone) == []
        assert len(await history_store.list(kept)) == 1
        await history_store.delete(_session())  # deleting nothing is fine

    @pytest.mark.asyncio
    async def test_concurrent_appends_lose_nothing(self, history_store: Any) -> None:
        session = _session()
        await asyncio.gather(*(history_store.append(session, [_turn(i)]) for i in range(40)))
        turns = await history_store.list(session, limit=50)
        assert sorted(t.metadata["i"] for t in turns) == list(range(40))

    @pytest.mark.asyncio
    async def test_bad_arguments_name_the_field(self, history_store: Any) -> None:
        with pytest.raises(ConfigurationError, match="session_id"):
            await history_store.list("")
        with pytest.raises(ConfigurationError, match="limit"):
            await history_store.list(_session(), limit=-1)


def build_context(agent_types: list[str] | None = None, redis: Any = None) -> PluginBuildContext:
    """A :class:`PluginBuildContext` for calling a plugin's ``setup`` outside a worker."""
    return PluginBuildContext(
        worker_id="conformance-worker",
        agent_types=agent_types or ["agent"],
        redis=redis,
        keys=Keys(namespace="conformance"),
    )


class PluginSuite:
    """What every :class:`~byway.plugins.Plugin` must do. Provide a ``plugin`` fixture
    (an instance built the way discovery builds it, or skip if it declines)."""

    @pytest.mark.asyncio
    async def test_has_a_valid_manifest(self, plugin: Any) -> None:
        assert isinstance(plugin, Plugin)
        assert isinstance(plugin.manifest, PluginManifest)
        assert plugin.manifest.id != "unnamed", "set manifest = PluginManifest('<id>')"

    @pytest.mark.asyncio
    async def test_hooks_are_coroutines(self, plugin: Any) -> None:
        for hook in (*HOOKS, "setup", "reload"):
            assert inspect.iscoroutinefunction(getattr(plugin, hook)), f"{hook} must be async"

    @pytest.mark.asyncio
    async def test_setup_registers_or_declines(self, plugin: Any) -> None:
        ctx = build_context()
        try:
            await asyncio.wait_for(plugin.setup(ctx), 30)
        except PluginDeclined:
            return
        for name, config in ctx.agent_configs.items():
            assert config.agent_id == name
            config.snapshot()  # JSON-safe
        if ctx.history_store is not None:
            assert isinstance(ctx.history_store, HistoryStore)

    @pytest.mark.asyncio
    async def test_reloading_twice_registers_the_same_configs(self, plugin: Any) -> None:
        """A hot reload runs ``reload`` (by default ``setup``) again on the same instance;
        with its configuration unchanged it must register exactly what it did before."""
        snapshots = []
        for _ in range(2):
            ctx = build_context()
            try:
                await asyncio.wait_for(plugin.reload(ctx), 30)
            except PluginDeclined:
                return
            snapshots.append({k: v.snapshot() for k, v in ctx.agent_configs.items()})
        assert snapshots[0] == snapshots[1]
