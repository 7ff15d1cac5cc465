"""``byway history`` only reads: no migrations, and one ``error:`` line when it cannot."""

from __future__ import annotations

import asyncio
import socket

import asyncpg
import pytest
from byway_history_postgres import PostgresHistoryStore

from byway import HistoryEntry
from byway.cli import main

pytestmark = [pytest.mark.postgres]


def _fail(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--log-level", "INFO", "history", *argv])
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


async def test_a_database_without_the_tables_is_left_alone(
    pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = await _in_thread(["s", "--dsn", pg_dsn], capsys)
    assert (code, err.strip()) == (
        1,
        "error: no Byway history tables in this database (run a worker with the plugin first)",
    )
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert (
            await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        )
    finally:
        await conn.close()


async def test_a_missing_database_and_a_closed_port_are_one_line(
    pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = pg_dsn.rsplit("/", 1)[0] + "/byway_no_such_database"
    code, err = await _in_thread(["s", "--dsn", missing], capsys)
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: "), err
    assert "byway_no_such_database" in err and "Traceback" not in err
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    code, err = await _in_thread(
        ["--user", "u", "--dsn", f"postgresql://x@127.0.0.1:{port}/x"], capsys
    )
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: "), err
    assert "unreachable" in err


async def test_it_prints_a_session_and_checks_the_limit(
    pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with PostgresHistoryStore.connect(pg_dsn) as store:
        await store.append("cli", [HistoryEntry(role="user", content="hello", timestamp=1)])
    capsys.readouterr()
    code = await _run(["history", "cli", "--dsn", pg_dsn])
    captured = capsys.readouterr()
    assert code == 0 and "hello" in captured.out and captured.err == ""
    code, err = await _in_thread(["cli", "--limit", "0", "--dsn", pg_dsn], capsys)
    assert (code, err.strip()) == (2, "error: --limit: expected a positive integer, got 0")


async def _run(argv: list[str]) -> int:
    return await asyncio.to_thread(main, ["--log-level", "INFO", *argv])


async def _in_thread(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The command runs its own event loop: off this test's."""
    return await asyncio.to_thread(_fail, argv, capsys)
