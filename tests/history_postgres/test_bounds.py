"""A slow or refusing PostgreSQL never holds a task, the queue, or a stopping worker long.

A lock another connection holds makes PostgreSQL slow on purpose (the writes wait on it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
import pytest
from byway_history_postgres import (
    PostgresHistoryPlugin,
    PostgresHistorySettings,
    PostgresHistoryStore,
)

from byway import HistoryEntry
from tests.history_postgres.conftest import eventually

pytestmark = [pytest.mark.postgres]


async def _until(condition: Callable[[], bool]) -> None:
    async def check() -> bool:
        return condition()

    await eventually(check)


def _turn(text: str) -> HistoryEntry:
    return HistoryEntry(role="user", content=text)


@asynccontextmanager
async def _locked(dsn: str, table: str) -> AsyncIterator[None]:
    """``table`` locked against everything (reads too) until the block ends."""
    conn = await asyncpg.connect(dsn)
    tx = conn.transaction()
    await tx.start()
    await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        await tx.rollback()
        await conn.close()


async def _timed(call: object) -> float:
    start = time.monotonic()
    await asyncio.wait_for(call, 5)  # type: ignore[arg-type]
    return time.monotonic() - start


async def test_append_never_waits_long_on_a_slow_postgres(pg_dsn: str) -> None:
    async with PostgresHistoryStore.connect(pg_dsn) as store:
        async with _locked(pg_dsn, "byway_sessions"):
            # nothing queued ahead: waits for the commit, half a second at most
            assert await _timed(store.append("slow", [_turn("a")] * 1_500)) < 1.5
            # 1,500 rows queued ahead: returns once buffered
            assert await _timed(store.append("slow", [_turn("b")])) < 0.2
            assert store.stats.buffered == 1_501
        await _until(lambda: store.stats.buffered == 0)
        turns = await store.list("slow", limit=2_000)
    assert [t.content for t in turns] == ["a"] * 1_500 + ["b"]


async def test_the_workers_read_answers_at_once_while_postgres_is_behind(pg_dsn: str) -> None:
    async with PostgresHistoryStore.connect(pg_dsn, timeout=1.0) as store:
        await store.append("read", [_turn("kept")])
        async with _locked(pg_dsn, "byway_messages"):
            # a read that does not come back: a second, then no turns
            assert await _timed(store.list("read")) < 2.5
            assert store.stats.unread == 1
            # a write times out too (a 1 s command timeout): the writer now knows
            await store.append("read", [_turn("queued")])
            await _until(lambda: store.stats.outages == 1)
            assert await _timed(store.list("read")) < 0.1  # no read tried
            assert store.stats.unread == 2
        await _until(lambda: store.stats.buffered == 0)
        assert [t.content for t in await store.list("read")] == ["kept", "queued"]


async def test_a_refused_batch_is_dropped_after_a_few_tries(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Not an outage (here a trigger refuses turns, as a revoked grant would): the rows
    are tried a few times, dropped and counted, and the queue goes on."""
    caplog.set_level(logging.INFO, logger="byway.history_postgres")
    async with PostgresHistoryStore.connect(pg_dsn) as store:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN RAISE EXCEPTION 'permission denied (test)'; END $$;"
                " CREATE TRIGGER refuse BEFORE INSERT ON byway_messages"
                " FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
            await store.append("refused", [_turn("one"), _turn("two")])
            await store.append("refused", [_turn("three")])
            await store.delete("other")  # queued behind them: written
            await _until(lambda: store.stats.buffered == 0)
            await conn.execute("DROP TRIGGER refuse ON byway_messages")
        finally:
            await conn.close()
        await store.append("refused", [_turn("later")])
        assert [t.content for t in await store.list("refused")] == ["later"]
        stats = store.stats
    assert (stats.failed, stats.outages, stats.rejected) == (3, 0, 0)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "RaiseError" in errors[0].getMessage()


async def test_a_stopping_worker_waits_under_four_seconds(pg_dsn: str) -> None:
    plugin = PostgresHistoryPlugin(PostgresHistorySettings(dsn=pg_dsn))
    from byway.testing import build_context

    await plugin.setup(build_context())
    store = plugin.store
    assert store is not None
    async with _locked(pg_dsn, "byway_sessions"):
        await store.append("stopping", [_turn("stuck")])
        start = time.monotonic()
        await plugin.on_worker_shutdown(None)  # type: ignore[arg-type]
        assert time.monotonic() - start < 4.0
    assert store.stats.abandoned == 1
