"""Conversation history: what a session's user said and its agents answered.

The worker appends the user's message and the agent's answer of every root task, and
hands the session's recent history to the next root task as
``command.extra_payload["history"]`` (a list of :class:`HistoryEntry` dicts, oldest
first). The default store keeps it in Redis (a capped list per session with the session's
TTL), shared by every worker; a plugin may replace it (the Postgres history plugin does)
through :meth:`PluginBuildContext.set_history_store`. Any store passes
``byway.testing.HistoryStoreSuite``.

A store may also keep an audit log of executions by implementing :class:`ExecutionLog`:
the worker then hands it the record of every execution it starts, suspends or ends.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from byway.errors import ConfigurationError
from byway.keys import Keys

if TYPE_CHECKING:
    from byway.records import ExecutionRecord

__all__ = [
    "ExecutionLog",
    "HistoryEntry",
    "HistoryStore",
    "InMemoryHistoryStore",
    "RedisHistoryStore",
]


class HistoryEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One turn: ``role`` is ``"user"`` or ``"assistant"``."""

    role: str
    content: Any
    message_id: str = ""
    agent_type: str = ""
    status: str = ""
    timestamp: int = 0
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


_encode = msgspec.json.Encoder().encode
_decode_groups = msgspec.json.Decoder(list[list[HistoryEntry]]).decode


def _check(session_id: str, limit: int | None = None) -> None:
    if not isinstance(session_id, str) or not session_id:
        raise ConfigurationError(f"session_id: expected a non-empty string, got {session_id!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ConfigurationError(f"limit: expected a non-negative integer, got {limit!r}")


@runtime_checkable
class HistoryStore(Protocol):
    """Where conversation history lives. Every method is safe to call concurrently from
    many workers; ``list`` returns the newest ``limit`` entries, oldest first."""

    async def append(self, session_id: str, entries: list[HistoryEntry]) -> None: ...

    async def list(self, session_id: str, limit: int = 50) -> list[HistoryEntry]: ...

    async def delete(self, session_id: str) -> None: ...


@runtime_checkable
class ExecutionLog(Protocol):
    """A history store that also keeps every execution's state transitions.

    The worker checks for it once, when the store is installed, and then hands it the
    execution record (with its whole timeline) each time it starts, suspends or ends an
    execution. The same record arrives more than once and from several workers, newer
    before older: keep each timeline entry once, by its position in the timeline. The
    call is on the task's path: buffer and return, never wait on I/O, never raise.
    """

    async def record_executions(self, records: list[ExecutionRecord]) -> None: ...


class RedisHistoryStore:
    """History in a Redis list per session, expiring ``ttl_seconds`` after the last append
    (the session's TTL by default). Each list element is one append (a JSON array of turns:
    a task's question and answer), and the newest ``max_entries`` appends are kept.

    The worker reads and writes it inside the scripts that start and end a task (same
    slot as the session), so history costs no extra command per task.
    """

    def __init__(
        self, redis: Any, keys: Keys, *, max_entries: int = 200, ttl_seconds: int = 7 * 86400
    ) -> None:
        if max_entries < 1:
            raise ConfigurationError(f"max_entries: expected at least 1, got {max_entries}")
        self.redis = redis
        self.keys = keys
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def encode_group(entries: list[HistoryEntry]) -> bytes:
        """One list element: the turns of one append."""
        return _encode(entries)

    def queue_append(self, pipe: Any, session_id: str, entries: list[HistoryEntry]) -> None:
        if not entries:
            return
        key = self.keys.session_history(session_id)
        pipe.rpush(key, self.encode_group(entries))
        pipe.ltrim(key, -self.max_entries, -1)
        pipe.expire(key, self.ttl_seconds)

    @staticmethod
    def decode_builtins(raw: list[bytes], limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` turns of some list elements, as plain dicts (one decode)."""
        if not raw:
            return []
        groups: list[list[dict[str, Any]]] = msgspec.json.decode(b"[" + b",".join(raw) + b"]")
        return [turn for group in groups for turn in group][-limit:]

    async def append(self, session_id: str, entries: list[HistoryEntry]) -> None:
        _check(session_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            self.queue_append(pipe, session_id, entries)
            await pipe.execute()

    async def list(self, session_id: str, limit: int = 50) -> list[HistoryEntry]:
        _check(session_id, limit)
        if limit == 0:
            return []
        raw = await self.redis.lrange(self.keys.session_history(session_id), -limit, -1)
        groups = _decode_groups(b"[" + b",".join(raw) + b"]") if raw else []
        return [turn for group in groups for turn in group][-limit:]

    async def delete(self, session_id: str) -> None:
        _check(session_id)
        await self.redis.delete(self.keys.session_history(session_id))


class InMemoryHistoryStore:
    """History in this process's memory (tests, single-process tools): bounded per session."""

    def __init__(self, *, max_entries: int = 200) -> None:
        if max_entries < 1:
            raise ConfigurationError(f"max_entries: expected at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._sessions: defaultdict[str, deque[HistoryEntry]] = defaultdict(
            lambda: deque(maxlen=self.max_entries)
        )
        self._lock = asyncio.Lock()

    async def append(self, session_id: str, entries: list[HistoryEntry]) -> None:
        _check(session_id)
        async with self._lock:
            self._sessions[session_id].extend(entries)

    async def list(self, session_id: str, limit: int = 50) -> list[HistoryEntry]:
        _check(session_id, limit)
        if limit == 0 or session_id not in self._sessions:
            return []
        return list(self._sessions[session_id])[-limit:]

    async def delete(self, session_id: str) -> None:
        _check(session_id)
        async with self._lock:
            self._sessions.pop(session_id, None)
