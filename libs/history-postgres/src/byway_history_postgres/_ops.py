"""Writes: turns and execution records as rows, and the SQL that writes a batch of them.

A batch is one transaction. Its sessions are upserted first, in session-id order, and its
executions and transitions in id order, so two workers flushing at once lock rows in the
same order and never deadlock. A delete splits the batch: what was queued before it is
written before it, what came after it, after.

Holding its session's row, a turn is placed after the session's last turn whatever its
timestamp says (``created_at`` is the later of the two, by a microsecond at least), so
the clocks of the workers' hosts cannot reorder a session; and a turn already written
(the same session, message, role, status and run: a task ended twice) is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from byway.history import HistoryEntry
from byway.records import ExecutionRecord
from byway_history_postgres._writer import Op

__all__ = [
    "MESSAGES",
    "delete_op",
    "execution_op",
    "from_us",
    "message_op",
    "to_ms",
    "to_time",
    "to_us",
    "write",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_json = msgspec.json.Encoder()


def to_time(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def to_ms(at: datetime | None) -> int:
    return 0 if at is None else (at - _EPOCH) // timedelta(milliseconds=1)


def to_us(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _jsonb(value: Any) -> str:
    return _json.encode(value).decode()


@dataclass(slots=True)
class _Session:
    user_code: str
    agent_types: set[str]
    created_at: datetime
    updated_at: datetime

    def merge(self, other: _Session) -> None:
        self.user_code = self.user_code or other.user_code
        self.agent_types |= other.agent_types
        self.created_at = min(self.created_at, other.created_at)
        self.updated_at = max(self.updated_at, other.updated_at)


@dataclass(slots=True)
class _Rows:
    """The rows of one op: the session it touches and what goes into each table."""

    session_id: str
    session: _Session
    messages: list[tuple[Any, ...]] = field(default_factory=list)
    executions: list[tuple[Any, ...]] = field(default_factory=list)
    transitions: list[tuple[Any, ...]] = field(default_factory=list)


MESSAGES = "messages"
_EXECUTIONS, _DELETE = "executions", "delete"


def _once_key(entry: HistoryEntry) -> str | None:
    """What makes a turn the same turn written again (None: a turn without a message id,
    never deduplicated). ``metadata["run"]`` tells apart the runs of one message that
    follow the user's answers (the worker sets it)."""
    if not entry.message_id:
        return None
    run = entry.metadata.get("run", 0) if isinstance(entry.metadata, dict) else 0
    return _jsonb([entry.message_id, entry.role, entry.status, run])


def message_op(session_id: str, entries: list[HistoryEntry], now_ms: int) -> Op:
    """The turns of one append; a turn without a timestamp is ordered by ``now_ms``."""
    rows = []
    for entry in entries:
        at = to_time(entry.timestamp or now_ms)
        rows.append(
            (
                session_id,
                entry.role,
                _jsonb(entry.content),
                entry.message_id,
                entry.agent_type,
                entry.status,
                _jsonb(entry.metadata),
                entry.timestamp,
                at,
                _once_key(entry),
            )
        )
    times = [r[8] for r in rows] or [to_time(now_ms)]
    session = _Session("", {e.agent_type for e in entries if e.agent_type}, min(times), max(times))
    return Op(MESSAGES, _Rows(session_id, session, messages=rows), len(rows))


def execution_op(record: ExecutionRecord, new_from: int) -> Op:
    """An execution's row and its timeline entries from position ``new_from`` on."""
    timeline = record.timeline if isinstance(record.timeline, list) else []
    created = to_time(record.created_at or (timeline[0].timestamp if timeline else 0))
    execution = (
        record.execution_id,
        record.session_id,
        record.message_id,
        record.parent_message_id,
        record.trace_id,
        record.target_agent_type,
        record.source_agent_type,
        record.task_group_id,
        record.user_code,
        record.depth,
        record.status,
        created,
        to_time(record.finished_at) if record.finished_at else None,
        len(timeline),
    )
    transitions = [
        (
            record.execution_id,
            seq,
            record.session_id,
            entry.status,
            to_time(entry.timestamp),
            entry.worker_id,
            _jsonb(entry.detail) if entry.detail else None,
        )
        for seq, entry in enumerate(timeline)
        if seq >= new_from
    ]
    updated = to_time(max(record.updated_at, record.created_at))
    agent_types = {record.target_agent_type} if record.target_agent_type else set()
    session = _Session(record.user_code, agent_types, created, updated)
    rows = _Rows(record.session_id, session, executions=[execution], transitions=transitions)
    return Op(_EXECUTIONS, rows, 1 + len(transitions))


def delete_op(session_id: str) -> Op:
    return Op(_DELETE, session_id, 1)


_UPSERT_SESSION = """
INSERT INTO byway_sessions AS s (session_id, user_code, agent_types, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (session_id) DO UPDATE SET
    user_code = CASE WHEN s.user_code = '' THEN excluded.user_code ELSE s.user_code END,
    agent_types = ARRAY(
        SELECT DISTINCT t FROM unnest(s.agent_types || excluded.agent_types) AS t ORDER BY t
    ),
    created_at = least(s.created_at, excluded.created_at),
    updated_at = greatest(s.updated_at, excluded.updated_at)
"""
# the session's row is locked (upserted above in this transaction): max() is the last turn
_INSERT_MESSAGE = """
INSERT INTO byway_messages (session_id, role, content, message_id, agent_type, status,
    metadata, timestamp_ms, created_at, once_key)
SELECT $1, $2, $3::jsonb, $4, $5, $6, $7::jsonb, $8, greatest($9::timestamptz,
    (SELECT max(created_at) + interval '1 microsecond' FROM byway_messages
     WHERE session_id = $1)), $10
ON CONFLICT DO NOTHING
"""
_UPSERT_EXECUTION = """
INSERT INTO byway_executions AS e (execution_id, session_id, message_id, parent_message_id,
    trace_id, agent_type, source_agent_type, task_group_id, user_code, depth, status,
    created_at, finished_at, steps)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (execution_id) DO UPDATE SET
    status = excluded.status, finished_at = excluded.finished_at, steps = excluded.steps,
    user_code = CASE WHEN e.user_code = '' THEN excluded.user_code ELSE e.user_code END
WHERE excluded.steps >= e.steps
"""
_INSERT_TRANSITION = """
INSERT INTO byway_transitions (execution_id, seq, session_id, status, at, worker_id, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
ON CONFLICT DO NOTHING
"""
_DELETE_SESSION = "DELETE FROM byway_sessions WHERE session_id = $1"


async def write(conn: Any, ops: list[Op]) -> None:
    """Write ``ops`` in order, in one transaction."""
    async with conn.transaction():
        segment: list[_Rows] = []
        for op in ops:
            if op.kind == _DELETE:
                await _write_segment(conn, segment)
                segment = []
                await conn.execute(_DELETE_SESSION, op.rows)
            else:
                segment.append(op.rows)
        await _write_segment(conn, segment)


async def _write_segment(conn: Any, segment: list[_Rows]) -> None:
    if not segment:
        return
    sessions: dict[str, _Session] = {}
    for rows in segment:
        known = sessions.get(rows.session_id)
        if known is None:
            sessions[rows.session_id] = _Session(
                rows.session.user_code,
                set(rows.session.agent_types),
                rows.session.created_at,
                rows.session.updated_at,
            )
        else:
            known.merge(rows.session)
    await conn.executemany(
        _UPSERT_SESSION,
        [
            (sid, s.user_code, sorted(s.agent_types), s.created_at, s.updated_at)
            for sid, s in sorted(sessions.items())
        ],
    )
    messages = [m for rows in segment for m in rows.messages]
    if messages:
        await conn.executemany(_INSERT_MESSAGE, messages)
    executions = sorted((e for rows in segment for e in rows.executions), key=lambda e: e[0])
    if executions:
        await conn.executemany(_UPSERT_EXECUTION, executions)
    transitions = sorted(
        {(t[0], t[1]): t for rows in segment for t in rows.transitions}.values(),
        key=lambda t: (t[0], t[1]),
    )
    if transitions:
        await conn.executemany(_INSERT_TRANSITION, transitions)
