"""A session's upkeep: cancelling a tree of executions (CANCEL_TREE), handing a session
no one holds to its next message (KICK_SESSION), keeping a running root's lock
(RENEW_LOCK), and a handler's own states on an execution's timeline (TRANSITION)."""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec

from byway.keys import Keys
from byway.store.script import load, raw, text

__all__ = [
    "CANCEL_TREE",
    "KICK_SESSION",
    "RENEW_LOCK",
    "TRANSITION",
    "CancelTreeArgs",
    "CancelTreeReply",
    "CancelledItem",
    "KickSessionArgs",
    "KickSessionReply",
    "RenewLockArgs",
    "TransitionArgs",
    "cancel_tree",
    "kick_session",
    "queue_renew_lock",
    "transition",
]

CANCEL_TREE = load("cancel_tree")
KICK_SESSION = load("kick_session")
RENEW_LOCK = load("renew_lock")
TRANSITION = load("transition")


class CancelTreeArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One CANCEL_TREE call. KEYS: the session registry, stream, lock and queue."""

    keyspace: Keys
    session_id: str
    #: the message whose tree is cancelled ('' = every root of the session)
    message_id: str
    reason: str
    now_ms: int
    requested_by: str
    stream_maxlen: int
    ttl_s: int
    lock_grace_ms: int
    outbox: bool = False

    def keys(self) -> list[str]:
        k, session = self.keyspace, self.session_id
        return [
            k.session_registry(session),
            k.session_stream(session),
            k.session_lock(session),
            k.session_queue(session),
        ]

    def argv(self) -> list[Any]:
        return [
            self.message_id,
            self.reason,
            self.now_ms,
            self.requested_by,
            self.stream_maxlen,
            self.ttl_s,
            self.lock_grace_ms,
            "1" if self.outbox else "0",
        ]


class CancelledItem(TypedDict):
    """One execution CANCEL_TREE reached (as the script wrote it: a JSON object)."""

    message_id: str
    execution_id: str
    #: its status before
    previous: str
    #: it ended CANCELLED here (queued or waiting); else it runs and is CANCELLING
    ended: bool
    worker_id: str
    target_agent_type: str
    source_agent_type: str
    parent_message_id: str
    task_group_id: str
    trace_id: str


class CancelTreeReply(msgspec.Struct, frozen=True, kw_only=True):
    """What CANCEL_TREE reached, in BFS order, and (outbox mode) the queue item of the
    message its session was handed on to, for the caller to forward (b'' = none)."""

    items: list[CancelledItem]
    handed: bytes = b""

    @classmethod
    def decode(cls, reply: Any) -> CancelTreeReply:
        decoded = msgspec.json.decode(reply)
        items = decoded["items"]
        return cls(
            items=items if isinstance(items, list) else [],  # cjson: {} when empty
            handed=raw(decoded.get("handed")),
        )


async def cancel_tree(redis: Any, args: CancelTreeArgs) -> CancelTreeReply:
    return CancelTreeReply.decode(await CANCEL_TREE.call(redis, args))


class KickSessionArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One KICK_SESSION call. KEYS: the session registry, lock and queue."""

    keyspace: Keys
    session_id: str
    lock_grace_ms: int
    outbox: bool = False

    def keys(self) -> list[str]:
        k, session = self.keyspace, self.session_id
        return [k.session_registry(session), k.session_lock(session), k.session_queue(session)]

    def argv(self) -> list[Any]:
        return [self.lock_grace_ms, "1" if self.outbox else "0"]


class KickSessionReply(msgspec.Struct, frozen=True, kw_only=True):
    """``outcome``: 'busy' (the session is held), 'empty' (nothing queued), else the
    message id it was handed on to, whose queue item is ``handed`` in outbox mode."""

    outcome: str
    handed: bytes = b""

    @property
    def busy(self) -> bool:
        return self.outcome == "busy"

    @property
    def empty(self) -> bool:
        return self.outcome == "empty"

    @property
    def message_id(self) -> str:
        """The message the session was handed on to ('' when busy or empty)."""
        return "" if self.busy or self.empty else self.outcome

    @classmethod
    def decode(cls, reply: Any) -> KickSessionReply:
        return cls(outcome=text(reply[0]), handed=raw(reply[1]))


async def kick_session(redis: Any, args: KickSessionArgs) -> KickSessionReply:
    return KickSessionReply.decode(await KICK_SESSION.call(redis, args))


class RenewLockArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One RENEW_LOCK call: extend the session lock while ``message_id`` holds it.
    KEYS: the session lock."""

    keyspace: Keys
    session_id: str
    message_id: str
    lease_ms: int

    def keys(self) -> list[str]:
        return [self.keyspace.session_lock(self.session_id)]

    def argv(self) -> list[Any]:
        return [self.message_id, self.lease_ms]


def queue_renew_lock(pipe: Any, args: RenewLockArgs) -> None:
    """Queue RENEW_LOCK in ``pipe`` (its result: 1 when extended, else 0)."""
    RENEW_LOCK.queue_call(pipe, args)


class TransitionArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One TRANSITION call. KEYS: the session registry."""

    keyspace: Keys
    session_id: str
    execution_id: str
    #: a handler-defined state (states the scheduler owns are refused)
    state: str
    now_ms: int
    worker_id: str = ""
    #: the timeline entry's detail (a JSON object)
    detail: bytes = b"{}"

    def keys(self) -> list[str]:
        return [self.keyspace.session_registry(self.session_id)]

    def argv(self) -> list[Any]:
        return [self.execution_id, self.state, self.now_ms, self.worker_id, self.detail]


async def transition(redis: Any, args: TransitionArgs) -> bool:
    """Whether the state was written (False: refused, or the record is gone or ended)."""
    return bool(await TRANSITION.call(redis, args))
