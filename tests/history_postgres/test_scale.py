"""A user's sessions come from the index, with 100,000 sessions of other users beside them."""

from __future__ import annotations

import time

import asyncpg
import pytest
from byway_history_postgres import PostgresHistoryStore
from byway_history_postgres._store import SESSIONS_SQL

from byway import HistoryEntry

pytestmark = [pytest.mark.postgres]


def _node_types(plan: dict[str, object]) -> list[str]:
    found = [f"{plan['Node Type']} {plan.get('Index Name', '')}".strip()]
    for child in plan.get("Plans", []):  # type: ignore[attr-defined]
        found += _node_types(child)
    return found


async def test_listing_a_users_sessions_uses_the_index_among_100k_others(pg_dsn: str) -> None:
    async with PostgresHistoryStore.connect(pg_dsn) as store:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(
                "INSERT INTO byway_sessions (session_id, user_code, agent_types, created_at,"
                " updated_at) SELECT 'other-' || g, 'user-' || (g % 25000), '{chat}',"
                " now() - g * interval '1 s', now() - g * interval '1 s'"
                " FROM generate_series(1, 100000) AS g"
            )
            for i in range(30):
                await store.append(
                    f"ana-{i:02}",
                    [HistoryEntry(role="user", content="hi", timestamp=1_800_000_000_000 + i)],
                )
            await conn.execute(
                "UPDATE byway_sessions SET user_code = 'ana' WHERE session_id LIKE 'ana-%'"
            )
            await conn.execute("ANALYZE byway_sessions")
            seen: list[str] = []
            cursor = None
            started = time.perf_counter()
            while True:
                page = await store.sessions("ana", limit=10, cursor=cursor)
                seen += [s.session_id for s in page.sessions]
                cursor = page.next_cursor
                if cursor is None:
                    break
            elapsed = time.perf_counter() - started
            raw = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + SESSIONS_SQL.format(after=""), "ana", 11
            )
        finally:
            await conn.close()
    assert seen == [f"ana-{i:02}" for i in reversed(range(30))]
    import json

    plan = json.loads(raw)[0]
    nodes = _node_types(plan["Plan"])
    assert any("byway_sessions_by_user" in n for n in nodes), nodes
    assert not any(n.startswith("Seq Scan") and "sessions" in n for n in nodes), nodes
    print(f"\n3 pages of a user's sessions: {elapsed * 1000:.1f} ms; plan {nodes}; "
          f"execution {plan['Execution Time']:.2f} ms")  # fmt: skip
    assert plan["Execution Time"] < 50, plan["Execution Time"]
