"""Byway's PostgreSQL history plugin: conversation history and an auditable execution log.

Set ``BYWAY_HISTORY_POSTGRES_DSN`` (a ``postgresql://`` URL, or ``auto`` for an embedded
server) and every worker keeps its sessions' turns and every execution's state transitions
in PostgreSQL. See the README beside this package for the schema, queries and guarantees.
"""

from byway_history_postgres._cli import history_command
from byway_history_postgres._plugin import (
    PostgresHistoryPlugin,
    PostgresHistorySettings,
    start_embedded,
)
from byway_history_postgres._schema import MIGRATIONS
from byway_history_postgres._store import PostgresHistoryStore
from byway_history_postgres._types import (
    ExecutionNode,
    HistoryPage,
    HistoryStats,
    HistoryUnavailableError,
    PostgresHistoryError,
    SessionInfo,
    SessionPage,
    Transition,
)

__all__ = [
    "MIGRATIONS",
    "ExecutionNode",
    "HistoryPage",
    "HistoryStats",
    "HistoryUnavailableError",
    "PostgresHistoryError",
    "PostgresHistoryPlugin",
    "PostgresHistorySettings",
    "PostgresHistoryStore",
    "SessionInfo",
    "SessionPage",
    "Transition",
    "history_command",
    "start_embedded",
]
