"""PostgresHistoryStore: conversation history and the execution log in PostgreSQL.

A :class:`~byway.history.HistoryStore` (the worker reads and writes conversation turns
through it) and an :class:`~byway.history.ExecutionLog` (the worker hands it every
execution record it starts, suspends or ends), plus the queries users need. Writes go
through the write-behind buffer (``_writer``): a PostgreSQL outage never fails a task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from byway._log import get_logger
from byway._redact import redact_url
from byway.errors import ConfigurationError
from byway.history import HistoryEntry
from byway.protocol import now_ms
from byway.records import ExecutionRecord
from byway_history_postgres import _ops, _schema
from byway_history_postgres._types import (
    ExecutionNode,
    HistoryPage,
    HistoryStats,
    HistoryUnavailableError,
    SessionInfo,
    SessionPage,
    Transition,
)
from byway_history_postgres._writer import Writer, outage

__all__ = ["PostgresHistoryStore"]

log = get_logger("byway.history_postgres")

#: executions whose logged timeline length the store remembers (to send only what is new)
_SEEN_EXECUTIONS = 50_000
#: longest ``append`` waits for its turns to be committed (they stay queued after)
_APPEND_WAIT = 0.5
#: longest the worker's read (``list``) waits for a connection, then for its rows
_READ_TIMEOUT = 1.0
#: longest ``close`` gives the pool to close once the buffer is drained (or given up)
_POOL_CLOSE = 0.5


def _check_session(session_id: Any) -> None:
    if not isinstance(session_id, str) or not session_id:
        raise ConfigurationError(f"session_id: expected a non-empty string, got {session_id!r}")


def _check_limit(limit: Any, minimum: int = 0) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < minimum:
        expected = "a positive" if minimum else "a non-negative"
        raise ConfigurationError(f"limit: expected {expected} integer, got {limit!r}")


def _cursor(at: datetime, key: int | str) -> str:
    return f"{_ops.to_us(at)}:{key}"


def _parse_cursor(cursor: str, *, numeric: bool) -> tuple[datetime, str]:
    """``(time, key)`` of a cursor a page returned; names the field when it is not one."""
    first, sep, key = cursor.partition(":") if isinstance(cursor, str) else ("", "", "")
    if not sep or not first.lstrip("-").isdigit() or (numeric and not key.isdigit()):
        raise ConfigurationError(
            f"cursor: expected the next_cursor of a previous page, got {cursor!r}"
        )
    return _ops.from_us(int(first)), key


def _entry(row: Any) -> HistoryEntry:
    return HistoryEntry(
        role=row["role"],
        content=msgspec.json.decode(row["content"]) if row["content"] is not None else None,
        message_id=row["message_id"],
        agent_type=row["agent_type"],
        status=row["status"],
        timestamp=row["timestamp_ms"],
        metadata=msgspec.json.decode(row["metadata"]),
    )


def _transition(row: Any) -> Transition:
    return Transition(
        execution_id=row["execution_id"],
        seq=row["seq"],
        status=row["status"],
        timestamp=_ops.to_ms(row["at"]),
        worker_id=row["worker_id"],
        detail=msgspec.json.decode(row["detail"]) if row["detail"] is not None else None,
    )


#: a user's sessions, newest first ($1 user, $2 limit; ``after``: the cursor's condition)
SESSIONS_SQL = (
    "SELECT s.session_id, s.user_code, s.agent_types, s.created_at, s.updated_at,"
    " (SELECT count(*) FROM byway_messages m WHERE m.session_id = s.session_id) AS n"
    " FROM byway_sessions s WHERE s.user_code = $1{after}"
    " ORDER BY s.updated_at DESC, s.session_id DESC LIMIT $2"
)
_MESSAGE_COLUMNS = "id, role, content, message_id, agent_type, status, metadata, timestamp_ms"


class PostgresHistoryStore:
    """Conversation history and the execution log in PostgreSQL (asyncpg).

    ``async with PostgresHistoryStore.connect(dsn) as store:`` opens a pool, brings the
    schema up to date and, on exit, writes what is buffered and closes. Writes never raise
    on an outage: up to ``max_buffered`` rows wait in memory and are written in order when
    PostgreSQL is back (``stats`` counts what happened). ``list`` (the worker's read)
    answers no turns while PostgreSQL is down; the other queries raise
    :class:`HistoryUnavailableError`.
    """

    def __init__(
        self,
        dsn: str,
        *,
        max_buffered: int = 100_000,
        pool_size: int = 4,
        timeout: float = 10.0,
    ) -> None:
        if not isinstance(dsn, str) or not dsn.startswith(("postgres://", "postgresql://")):
            shown = redact_url(dsn) if isinstance(dsn, str) else dsn
            raise ConfigurationError(f"dsn: expected a postgresql:// URL, got {shown!r}")
        if not isinstance(max_buffered, int) or max_buffered < 1:
            raise ConfigurationError(
                f"max_buffered: expected a positive integer, got {max_buffered!r}"
            )
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigurationError(f"pool_size: expected a positive integer, got {pool_size!r}")
        self.dsn = dsn
        self.pool_size = pool_size
        self.timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._writer = Writer(self._flush, max_rows=max_buffered)
        self._schema_ready = False
        self._seen: OrderedDict[str, int] = OrderedDict()

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, dsn: str, **options: Any) -> AsyncIterator[PostgresHistoryStore]:
        store = cls(dsn, **options)
        await store.open()
        try:
            yield store
        finally:
            await store.close()

    @property
    def stats(self) -> HistoryStats:
        """What the write-behind buffer did (written, buffered, dropped, outages...)."""
        return self._writer.stats

    async def open(self, *, migrate: bool = True) -> None:
        """Create the pool and (``migrate``) bring the schema up to date. PostgreSQL being
        unreachable (or out of connections) is not an error here: the schema is set up
        before the first write; a refused login or a database that does not exist is.
        ``migrate=False`` (a reader, such as ``byway history``) leaves the schema alone."""
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=0,
                max_size=self.pool_size,
                timeout=self.timeout,
                command_timeout=self.timeout,
            )
        if not migrate:
            return
        try:
            await self.setup()
        except Exception as exc:
            if not outage(exc):
                raise
            log.warning(
                "history: PostgreSQL unreachable at start (%s: %s); writes are buffered",
                type(exc).__name__,
                exc,
            )

    async def schema_version(self) -> int:
        """The version of the schema in the database (0: no Byway history tables)."""
        async with self._reading() as conn:
            return await _schema.schema_version(conn)

    async def setup(self) -> int:
        """Apply the migrations the database lacks (idempotent); returns the version."""
        async with self._pool_acquire() as conn:
            version = await _schema.setup(conn)
        self._schema_ready = True
        return version

    async def close(self, timeout: float = 3.0) -> None:
        """Write what is buffered (up to ``timeout`` seconds), then close the pool (up to
        half a second more, then its connections are cut): at most ``timeout + 0.5`` s."""
        await self._writer.close(timeout)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), _POOL_CLOSE)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()
        s = self.stats
        if not (s.written or s.dropped or s.rejected or s.failed or s.abandoned or s.outages):
            return  # a reader (byway history): nothing to report
        log.info(
            "history: %d row(s) written in %d transaction(s); %d outage(s), %d dropped, "
            "%d rejected, %d failed, %d abandoned",
            s.written,
            s.flushes,
            s.outages,
            s.dropped,
            s.rejected,
            s.failed,
            s.abandoned,
        )

    def _pool_acquire(self, timeout: float | None = None) -> Any:
        if self._pool is None:
            raise HistoryUnavailableError("history store is not open (call open() first)")
        return self._pool.acquire(timeout=timeout)

    async def _flush(self, ops: list[Any]) -> None:
        async with self._pool_acquire() as conn:
            if not self._schema_ready:
                await _schema.setup(conn)
                self._schema_ready = True
            await _ops.write(conn, ops)

    # -- HistoryStore ----------------------------------------------------------------------

    async def append(self, session_id: str, entries: list[HistoryEntry]) -> None:
        """Add turns. Returns once they are committed when that is quick (PostgreSQL up,
        little queued ahead, at most half a second), else once they are queued: the queue
        keeps the order, and the worker's read does not answer from a database still
        writing a backlog."""
        _check_session(session_id)
        if not isinstance(entries, list) or not all(isinstance(e, HistoryEntry) for e in entries):
            raise ConfigurationError("entries: expected a list of HistoryEntry")
        if not entries:
            return
        await self._put_and_wait(_ops.message_op(session_id, entries, now_ms()))

    async def delete(self, session_id: str) -> None:
        """Forget the session's turns and its session row (after what was queued before;
        waits like ``append``). The execution log is append-only and keeps its transitions."""
        _check_session(session_id)
        await self._put_and_wait(_ops.delete_op(session_id))

    async def _put_and_wait(self, op: Any) -> None:
        if self._writer.put(op, wait=True) and op.done is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(op.done), _APPEND_WAIT)

    # -- ExecutionLog ----------------------------------------------------------------------

    async def record_executions(self, records: list[ExecutionRecord]) -> None:
        """Queue the records' new timeline entries (never waits, never raises)."""
        for record in records:
            steps = len(record.timeline) if isinstance(record.timeline, list) else 0
            seen = self._seen.get(record.execution_id, 0)
            if steps <= seen or not record.session_id:
                continue
            if self._writer.put(_ops.execution_op(record, seen)):
                self._seen[record.execution_id] = steps
                self._seen.move_to_end(record.execution_id)
                if len(self._seen) > _SEEN_EXECUTIONS:
                    self._seen.popitem(last=False)

    # -- queries ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _reading(self, timeout: float | None = None) -> AsyncIterator[Any]:
        """A connection for a read (waiting ``timeout`` at most, default the store's);
        an outage while reading raises HistoryUnavailableError."""
        try:
            async with self._pool_acquire(timeout) as conn:
                yield conn
        except HistoryUnavailableError:
            raise
        except Exception as exc:
            if not outage(exc):
                raise
            raise HistoryUnavailableError(
                f"history: PostgreSQL unreachable ({type(exc).__name__}: {exc})"
            ) from exc

    async def _fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]:
        """Rows of ``query``; ``timeout`` bounds the wait for a connection and then for the
        rows (default: the store's ``timeout``)."""
        async with self._reading(timeout) as conn:
            rows: list[Any] = await conn.fetch(query, *args, timeout=timeout)
            return rows

    async def history(
        self,
        session_id: str,
        *,
        limit: int = 50,
        newest_first: bool = True,
        cursor: str | None = None,
    ) -> HistoryPage:
        """One page of the session's turns, newest or oldest first; ``cursor`` is the
        ``next_cursor`` of the page before."""
        _check_session(session_id)
        _check_limit(limit, minimum=1)
        order, compare = ("DESC", "<") if newest_first else ("ASC", ">")
        args: list[Any] = [session_id, limit + 1]
        after = ""
        if cursor is not None:
            at, key = _parse_cursor(cursor, numeric=True)
            args += [at, int(key)]
            after = f" AND (created_at, id) {compare} ($3, $4)"
        rows = await self._fetch(
            f"SELECT {_MESSAGE_COLUMNS}, created_at FROM byway_messages"
            f" WHERE session_id = $1{after} ORDER BY created_at {order}, id {order} LIMIT $2",
            *args,
        )
        last = rows[limit - 1] if len(rows) > limit else None
        return HistoryPage(
            entries=[_entry(r) for r in rows[:limit]],
            next_cursor=_cursor(last["created_at"], last["id"]) if last is not None else None,
        )

    async def sessions(
        self, user_code: str, *, limit: int = 50, cursor: str | None = None
    ) -> SessionPage:
        """One page of the user's sessions, most recently active first."""
        if not isinstance(user_code, str):
            raise ConfigurationError(f"user_code: expected a string, got {user_code!r}")
        _check_limit(limit, minimum=1)
        args: list[Any] = [user_code, limit + 1]
        after = ""
        if cursor is not None:
            args += list(_parse_cursor(cursor, numeric=False))
            after = " AND (s.updated_at, s.session_id) < ($3, $4)"
        rows = await self._fetch(SESSIONS_SQL.format(after=after), *args)
        last = rows[limit - 1] if len(rows) > limit else None
        return SessionPage(
            sessions=[
                SessionInfo(
                    session_id=r["session_id"],
                    user_code=r["user_code"],
                    agent_types=list(r["agent_types"]),
                    created_at=_ops.to_ms(r["created_at"]),
                    updated_at=_ops.to_ms(r["updated_at"]),
                    messages=r["n"],
                )
                for r in rows[:limit]
            ],
            next_cursor=_cursor(last["updated_at"], last["session_id"]) if last else None,
        )

    async def timeline(self, execution_id: str) -> list[Transition]:
        """Every state of one execution, in order."""
        if not isinstance(execution_id, str) or not execution_id:
            raise ConfigurationError(
                f"execution_id: expected a non-empty string, got {execution_id!r}"
            )
        rows = await self._fetch(
            "SELECT * FROM byway_transitions WHERE execution_id = $1 ORDER BY seq", execution_id
        )
        return [_transition(r) for r in rows]

    async def session_log(self, session_id: str) -> list[Transition]:
        """Every state of every execution of the session, in time order (a replay)."""
        _check_session(session_id)
        rows = await self._fetch(
            "SELECT * FROM byway_transitions WHERE session_id = $1 ORDER BY at, execution_id, seq",
            session_id,
        )
        return [_transition(r) for r in rows]

    async def call_tree(self, session_id: str) -> list[ExecutionNode]:
        """The session's executions as trees: each root task, what it called, and so on,
        each with its transitions; roots and children oldest first."""
        _check_session(session_id)
        rows = await self._fetch(
            "SELECT * FROM byway_executions WHERE session_id = $1"
            " ORDER BY created_at, execution_id",
            session_id,
        )
        nodes = [
            ExecutionNode(
                execution_id=r["execution_id"],
                message_id=r["message_id"],
                parent_message_id=r["parent_message_id"],
                agent_type=r["agent_type"],
                source_agent_type=r["source_agent_type"],
                task_group_id=r["task_group_id"],
                trace_id=r["trace_id"],
                user_code=r["user_code"],
                depth=r["depth"],
                status=r["status"],
                created_at=_ops.to_ms(r["created_at"]),
                finished_at=_ops.to_ms(r["finished_at"]),
            )
            for r in rows
        ]
        by_id = {n.execution_id: n for n in nodes}
        for transition in await self.session_log(session_id):
            node = by_id.get(transition.execution_id)
            if node is not None:
                node.transitions.append(transition)
        for node in nodes:
            node.transitions.sort(key=lambda t: t.seq)
        by_message = {n.message_id: n for n in nodes}
        roots = []
        for node in nodes:
            parent = by_message.get(node.parent_message_id)
            if parent is None or parent is node:
                roots.append(node)
            else:
                parent.children.append(node)
        return roots

    # last in the class: below it, `list` would name this method
    async def list(self, session_id: str, limit: int = 50) -> list[HistoryEntry]:
        """The newest ``limit`` turns of the session, oldest first: the worker's read, on
        the task's path, so it never waits long. It answers no turns (counted in
        ``stats.unread``) at once while the writer is retrying through an outage or
        draining what queued during one, and after a second without a connection or
        rows; the other queries raise :class:`HistoryUnavailableError`."""
        _check_session(session_id)
        _check_limit(limit)
        if limit == 0:
            return []
        if self._writer.behind:
            self.stats.unread += 1
            return []
        try:
            rows = await self._fetch(
                f"SELECT {_MESSAGE_COLUMNS}, created_at FROM byway_messages WHERE session_id = $1"
                " ORDER BY created_at DESC, id DESC LIMIT $2",
                session_id,
                limit,
                timeout=_READ_TIMEOUT,
            )
        except HistoryUnavailableError as exc:
            # the task goes on without history
            self._writer.went_down(exc)
            self.stats.unread += 1
            return []
        self._writer.came_back()  # after a failed read with nothing queued: it answers again
        return [_entry(r) for r in reversed(rows)]
