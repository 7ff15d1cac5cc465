"""The store on a real PostgreSQL: conformance, schema setup, content shapes, paging."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from byway_history_postgres import (
    MIGRATIONS,
    PostgresHistoryPlugin,
    PostgresHistorySettings,
    PostgresHistoryStore,
)

from byway import ConfigurationError, HistoryEntry
from byway.plugins import PluginDeclined
from byway.testing import HistoryStoreSuite, PluginSuite

pytestmark = [pytest.mark.postgres]


class TestPostgresHistoryStore(HistoryStoreSuite):
    @pytest.fixture
    async def history_store(self, pg_dsn: str) -> AsyncIterator[PostgresHistoryStore]:
        async with PostgresHistoryStore.connect(pg_dsn) as store:
            yield store


class TestPostgresHistoryPlugin(PluginSuite):
    @pytest.fixture
    async def plugin(self, pg_dsn: str) -> AsyncIterator[PostgresHistoryPlugin]:
        plugin = PostgresHistoryPlugin(PostgresHistorySettings(dsn=pg_dsn))
        yield plugin
        if plugin.store is not None:
            await plugin.store.close()


async def _tables(conn: Any) -> list[str]:
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    )
    return [r["tablename"] for r in rows]


async def test_setup_twice_is_a_no_op(pg_dsn: str) -> None:
    async with PostgresHistoryStore.connect(pg_dsn) as store:
        await store.append("s", [HistoryEntry(role="user", content="kept")])
        assert await store.setup() == len(MIGRATIONS)
    async with PostgresHistoryStore.connect(pg_dsn) as again:
        assert await again.setup() == len(MIGRATIONS)
        assert [e.content for e in await again.list("s")] == ["kept"]
    conn = await asyncpg.connect(pg_dsn)
    try:
        versions = await conn.fetch("SELECT version FROM byway_history_migrations ORDER BY 1")
        assert [r["version"] for r in versions] == list(range(1, len(MIGRATIONS) + 1))
        assert await _tables(conn) == [
            "byway_executions",
            "byway_history_migrations",
            "byway_messages",
            "byway_sessions",
            "byway_transitions",
        ]
    finally:
        await conn.close()


SHAPES: list[Any] = [
    "plain text",
    "ünïcödé ✓ 中文 🙂",
    "",
    [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "x.png"}}],
    {"parts": [{"text": "a"}], "role": "model", "nested": {"deep": [1, 2.5, True, None]}},
    [],
    {},
    None,
    42,
    -1.25,
    True,
    2**53,
]


async def test_content_of_every_shape_round_trips(pg_dsn: str) -> None:
    turns = [
        HistoryEntry(role="user", content=c, message_id=f"m{i}", timestamp=1_700_000_000_000 + i)
        for i, c in enumerate(SHAPES)
    ]
    async with PostgresHistoryStore.connect(pg_dsn) as store:
        await store.append("shapes", turns)
        assert await store.list("shapes", limit=100) == turns
        page = await store.history("shapes", limit=100, newest_first=False)
        assert [e.content for e in page.entries] == SHAPES
    conn = await asyncpg.connect(pg_dsn)
    try:  # real JSON in PostgreSQL, queryable as such
        kind = await conn.fetchval(
            "SELECT content->1->>'type' FROM byway_messages WHERE message_id = 'm3'"
        )
        deep = await conn.fetchval(
            "SELECT content#>>'{nested,deep,1}' FROM byway_messages WHERE message_id = 'm4'"
        )
    finally:
        await conn.close()
    assert (kind, deep) == ("image_url", "2.5")


async def test_history_pages_both_ways_and_cursors_are_checked(pg_dsn: str) -> None:
    turns = [
        HistoryEntry(role="user", content=f"t{i}", timestamp=1_700_000_000_000 + i // 2)
        for i in range(7)  # pairs share a timestamp: the order within them is arrival
    ]
    async with PostgresHistoryStore.connect(pg_dsn) as store:
        await store.append("paged", turns)
        for newest_first in (True, False):
            seen: list[str] = []
            cursor = None
            while True:
                page = await store.history(
                    "paged", limit=3, newest_first=newest_first, cursor=cursor
                )
                seen += [e.content for e in page.entries]
                cursor = page.next_cursor
                if cursor is None:
                    break
            expected = [f"t{i}" for i in range(7)]
            assert seen == (expected[::-1] if newest_first else expected)
        with pytest.raises(ConfigurationError, match="cursor"):
            await store.history("paged", cursor="nonsense")
        with pytest.raises(ConfigurationError, match="limit"):
            await store.history("paged", limit=-1)


async def test_a_row_postgres_refuses_is_dropped_alone(pg_dsn: str) -> None:
    async with PostgresHistoryStore.connect(pg_dsn) as store:
        await store.append("bad", [HistoryEntry(role="user", content="before")])
        await store.append("bad", [HistoryEntry(role="user", content="nul \x00 inside")])
        await store.append("bad", [HistoryEntry(role="user", content="after")])
        assert [e.content for e in await store.list("bad")] == ["before", "after"]
        assert (store.stats.rejected, store.stats.written, store.stats.buffered) == (1, 2, 0)


async def test_delete_forgets_turns_after_what_was_queued_before(pg_dsn: str) -> None:
    async with PostgresHistoryStore.connect(pg_dsn) as store:
        await store.append("gone", [HistoryEntry(role="user", content="old")])
        await store.delete("gone")
        await store.append("gone", [HistoryEntry(role="user", content="new")])
        assert [e.content for e in await store.list("gone")] == ["new"]


def test_the_plugin_declines_without_a_dsn_and_names_a_bad_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BYWAY_HISTORY_POSTGRES_DSN", raising=False)
    with pytest.raises(PluginDeclined, match="BYWAY_HISTORY_POSTGRES_DSN"):
        PostgresHistoryPlugin()
    monkeypatch.setenv("BYWAY_HISTORY_POSTGRES_DSN", "mysql://nope")
    with pytest.raises(ConfigurationError, match="BYWAY_HISTORY_POSTGRES_DSN: expected"):
        PostgresHistoryPlugin()
    monkeypatch.setenv("BYWAY_HISTORY_POSTGRES_DSN", "auto")
    monkeypatch.setenv("BYWAY_HISTORY_POSTGRES_BUFFER", "lots")
    with pytest.raises(ConfigurationError, match="BYWAY_HISTORY_POSTGRES_BUFFER"):
        PostgresHistoryPlugin()


async def test_the_execution_log_is_append_only(pg_dsn: str) -> None:
    async with PostgresHistoryStore.connect(pg_dsn):
        pass
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            "INSERT INTO byway_transitions (execution_id, seq, session_id, status, at)"
            " VALUES ('e', 0, 's', 'QUEUED', now())"
        )
        for change in (
            "UPDATE byway_transitions SET status = 'X'",
            "DELETE FROM byway_transitions",
        ):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(change)
        assert await conn.fetchval("SELECT status FROM byway_transitions") == "QUEUED"
    finally:
        await conn.close()


async def test_the_same_record_twice_is_logged_once(pg_dsn: str) -> None:
    from byway.records import ExecutionRecord, TimelineEntry

    record = ExecutionRecord(
        execution_id="e1",
        message_id="m1",
        session_id="logged",
        status="RUNNING",
        created_at=1_700_000_000_000,
        timeline=[
            TimelineEntry(status="QUEUED", timestamp=1_700_000_000_000),
            TimelineEntry(status="RUNNING", timestamp=1_700_000_000_001),
        ],
    )
    async with PostgresHistoryStore.connect(pg_dsn) as store:
        await store.record_executions([record])
        await store.record_executions([record])  # a hand-off: nothing new in it
        queued = store.stats.buffered + store.stats.written
        assert queued == 3  # the execution's row and its two transitions, once
        record.timeline.append(TimelineEntry(status="COMPLETED", timestamp=1_700_000_000_002))
        await store.record_executions([record])
        assert store.stats.buffered + store.stats.written == queued + 2  # its row, one new step


async def test_turns_appended_twice_are_kept_once(pg_dsn: str) -> None:
    """A task ended twice (a rerun after a lost lease) appends its turns again; the
    user's answers to questions (later runs, ``metadata.run``) are new turns."""

    def turns(answer: str, run: int = 0) -> list[HistoryEntry]:
        meta = {"run": run} if run else {}
        return [
            HistoryEntry(role="user", content="q", message_id="m1", metadata=meta),
            HistoryEntry(
                role="assistant", content=answer, message_id="m1", status="COMPLETED", metadata=meta
            ),
        ]

    async with PostgresHistoryStore.connect(pg_dsn) as store:
        await store.append("twice", turns("first"))
        await store.append("twice", turns("second"))  # the rerun: same turns, other words
        await store.append("twice", turns("after an answer", run=1))
        await store.append("twice", [HistoryEntry(role="user", content="no id")] * 2)
        got = [(t.role, t.content) for t in await store.list("twice")]
    assert got == [
        ("user", "q"),
        ("assistant", "first"),
        ("user", "q"),
        ("assistant", "after an answer"),
        ("user", "no id"),
        ("user", "no id"),
    ]


async def test_a_late_clock_cannot_reorder_a_session(pg_dsn: str) -> None:
    """A worker whose clock is behind appends a turn stamped before the last one: it
    still comes after it (its own timestamp is kept)."""
    async with PostgresHistoryStore.connect(pg_dsn) as store:
        await store.append("skew", [HistoryEntry(role="user", content="newer", timestamp=2_000)])
        await store.append("skew", [HistoryEntry(role="user", content="older", timestamp=1_000)])
        listed = await store.list("skew")
        page = await store.history("skew", limit=1)
        rest = await store.history("skew", limit=1, cursor=page.next_cursor)
    assert [(t.content, t.timestamp) for t in listed] == [("newer", 2_000), ("older", 1_000)]
    assert [t.content for t in page.entries + rest.entries] == ["older", "newer"]


async def test_paged_queries_need_a_limit_of_one_or_more(pg_dsn: str) -> None:
    async with PostgresHistoryStore.connect(pg_dsn) as store:
        await store.append("zero", [HistoryEntry(role="user", content="x")])
        with pytest.raises(ConfigurationError, match="limit: expected a positive"):
            await store.history("zero", limit=0)
        with pytest.raises(ConfigurationError, match="limit: expected a positive"):
            await store.sessions("", limit=0)
        assert await store.list("zero", limit=0) == []
