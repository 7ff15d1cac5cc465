"""A PostgreSQL outage in the middle of a run: tasks keep finishing, nothing is lost."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from byway_history_postgres import (
    PostgresHistoryPlugin,
    PostgresHistorySettings,
    PostgresHistoryStore,
)

from byway import GatewayClient, RedisSettings
from tests.agents.plugged import remember
from tests.conftest import running
from tests.history_postgres.conftest import embedded_postgres, eventually

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def _ask(client: GatewayClient, session: str, text: str) -> str:
    sent = await client.send_message("remember", session, text)
    final = await client.wait_for_final(session, sent.message_id, timeout=30)
    assert final.data["status"] == "COMPLETED", final.data
    return sent.message_id


async def test_an_outage_fails_no_task_and_loses_nothing(
    tmp_path: Path,
    client: GatewayClient,
    settings: RedisSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from embedded_postgres import pg_ctl

    caplog.set_level(logging.INFO, logger="byway.history_postgres")
    with embedded_postgres(tmp_path) as server:
        dsn = server.get_uri()  # type: ignore[attr-defined]
        plugin = PostgresHistoryPlugin(PostgresHistorySettings(dsn=dsn))
        async with running(remember, settings, plugins=[plugin]) as runner:
            store = runner.history
            assert isinstance(store, PostgresHistoryStore)
            sent = [await _ask(client, "outage", f"before {i}") for i in range(3)]
            await asyncio.to_thread(
                pg_ctl,
                ["-w", "-m", "fast", "stop"],
                pgdata=server.pgdata,  # type: ignore[attr-defined]
                user=server.system_user,  # type: ignore[attr-defined]
            )
            sent += [await _ask(client, "outage", f"during {i}") for i in range(4)]
            sent.append(await _ask(client, "outage-2", "elsewhere"))
            assert store.stats.outages == 1
            assert store.stats.buffered >= 8 * 2 + 5  # turns and transitions
            await asyncio.to_thread(server.ensure_postgres_running)  # type: ignore[attr-defined]

            async def drained() -> bool:
                return store.stats.buffered == 0

            await eventually(drained, timeout=20)
            stats = store.stats
        assert (stats.outages, stats.dropped, stats.rejected, stats.abandoned) == (1, 0, 0, 0)
        assert stats.unread == 5  # the tasks during the outage ran without their history
        async with PostgresHistoryStore.connect(dsn) as reader:
            turns = [(t.role, t.content) for t in await reader.list("outage", limit=100)]
            roots = await reader.call_tree("outage") + await reader.call_tree("outage-2")
    texts = [f"before {i}" for i in range(3)] + [f"during {i}" for i in range(4)]
    assert turns == [p for text in texts for p in (("user", text), ("assistant", f"heard {text}"))]
    assert [r.message_id for r in roots] == sent
    assert all(
        [t.status for t in r.transitions] == ["QUEUED", "RUNNING", "COMPLETED"] for r in roots
    )
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert any("PostgreSQL is back" in r.getMessage() for r in caplog.records)
