"""What the queries return, the write counters, and the package's errors.

Times are Unix milliseconds, like every timestamp on Byway's wire.

Errors::

    PostgresHistoryError (BywayError)
    └── HistoryUnavailableError (also byway.ConnectionError)   PostgreSQL did not answer a read
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from byway.errors import BywayError, ConnectionError
from byway.history import HistoryEntry

__all__ = [
    "ExecutionNode",
    "HistoryPage",
    "HistoryStats",
    "HistoryUnavailableError",
    "PostgresHistoryError",
    "SessionInfo",
    "SessionPage",
    "Transition",
]


class PostgresHistoryError(BywayError):
    """Root of the errors this package raises."""


class HistoryUnavailableError(PostgresHistoryError, ConnectionError):
    """PostgreSQL could not answer a read (writes never raise: they are buffered)."""


class Transition(msgspec.Struct, frozen=True, kw_only=True):
    """One state of one execution: ``seq`` is its place in the execution's timeline."""

    execution_id: str
    seq: int
    status: str
    timestamp: int
    worker_id: str = ""
    detail: dict[str, Any] | None = None


class ExecutionNode(msgspec.Struct, kw_only=True):
    """One execution of a session's call tree, its transitions, and the executions it
    started (``children``: calls and group members, oldest first)."""

    execution_id: str
    message_id: str
    parent_message_id: str
    agent_type: str
    source_agent_type: str
    task_group_id: str
    trace_id: str
    user_code: str
    depth: int
    status: str
    created_at: int
    finished_at: int
    transitions: list[Transition] = msgspec.field(default_factory=list)
    children: list[ExecutionNode] = msgspec.field(default_factory=list)


class SessionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A session as ``sessions()`` lists it."""

    session_id: str
    user_code: str
    agent_types: list[str]
    created_at: int
    updated_at: int
    messages: int


class HistoryPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of a session's turns; pass ``next_cursor`` back for the next (None: no more)."""

    entries: list[HistoryEntry]
    next_cursor: str | None


class SessionPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of a user's sessions, most recently active first."""

    sessions: list[SessionInfo]
    next_cursor: str | None


@dataclass(slots=True)
class HistoryStats:
    """What the store did through outages (rows: one per turn, execution or transition)."""

    #: rows written to PostgreSQL
    written: int = 0
    #: rows waiting in the buffer now
    buffered: int = 0
    #: most rows the buffer ever held
    peak_buffered: int = 0
    #: rows refused because the buffer was full (lost)
    dropped: int = 0
    #: rows PostgreSQL refused as invalid (lost; each is logged)
    rejected: int = 0
    #: rows PostgreSQL kept refusing for another reason (permission denied, a missing
    #: table...), dropped after a few tries so the rows behind them go through (lost)
    failed: int = 0
    #: rows still buffered when the store closed (lost)
    abandoned: int = 0
    #: times PostgreSQL became unreachable
    outages: int = 0
    #: flushes tried again after a failure
    retries: int = 0
    #: transactions written
    flushes: int = 0
    #: list() calls (the worker's history read) answered with no turns: PostgreSQL was
    #: down, slow to answer, or still writing what queued during an outage
    unread: int = 0
