"""FINISH (an execution ends: record, events, history, the session handed on) and SUSPEND
(an execution waits for a callee, a group or the user)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any

import msgspec

from byway.keys import Keys
from byway.store.script import load, raw, text

__all__ = [
    "FINISH",
    "SUSPEND",
    "FinishArgs",
    "FinishReply",
    "HistoryTurns",
    "SuspendArgs",
    "Suspended",
    "queue_finish",
    "suspend",
]

FINISH = load("finish")
SUSPEND = load("suspend")


class HistoryTurns(msgspec.Struct, frozen=True, kw_only=True):
    """A root task's turns for the session's history list (the Redis history store), or
    none (the defaults)."""

    #: history groups the list keeps
    keep: int = 0
    ttl_s: int = 0
    #: this run's group of turns (a JSON array), b'' = none
    group: bytes = b""
    #: how many bytes of ``group`` precede its last (the assistant's) turn
    head_bytes: int = 0
    #: that turn as a cancelled run writes it (swapped in when the answer is discarded)
    cancelled_turn: bytes = b""


class FinishArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One FINISH call. KEYS: the session registry, stream, lock, queue and history list."""

    keyspace: Keys
    session_id: str
    execution_id: str
    message_id: str
    #: COMPLETED, FAILED or CANCELLED
    status: str
    now_ms: int
    worker_id: str
    #: the summary kept in the record under 'result' (JSON object; no arrays)
    result: bytes
    stream_maxlen: int
    ttl_s: int
    lock_grace_ms: int
    outbox: bool = False
    history: HistoryTurns = HistoryTurns()
    #: the events XADDed to the session stream (unless the answer is discarded)
    events: Sequence[bytes] = ()

    def keys(self) -> list[str]:
        k, session = self.keyspace, self.session_id
        return [
            k.session_registry(session),
            k.session_stream(session),
            k.session_lock(session),
            k.session_queue(session),
            k.session_history(session),
        ]

    def argv(self) -> list[Any]:
        h = self.history
        return [
            self.execution_id,
            self.status,
            self.now_ms,
            self.worker_id,
            self.result,
            self.stream_maxlen,
            self.ttl_s,
            self.message_id,
            self.lock_grace_ms,
            "1" if self.outbox else "0",
            h.keep,
            h.ttl_s,
            h.group,
            h.head_bytes,
            h.cancelled_turn,
            *self.events,
        ]


class FinishReply(msgspec.Struct, frozen=True, kw_only=True):
    """``ended``: this call ended the execution (False: it had ended before, nothing was
    written). ``status``: the state written (CANCELLED for a root whose cancel was
    requested, whatever it returned). ``next_message_id``: the message the session was
    handed on to, whose queue item is ``handed`` in outbox mode (for the caller to send)."""

    ended: bool = False
    next_message_id: str = ""
    handed: bytes = b""
    status: str = ""

    @classmethod
    def decode(cls, reply: Any) -> FinishReply:
        """FINISH's result in a pipeline (an error, or anything else, decodes as not ended)."""
        if not isinstance(reply, list) or len(reply) < 4 or reply[0] != 1:
            return cls()
        return cls(
            ended=True, next_message_id=text(reply[1]), handed=raw(reply[2]), status=text(reply[3])
        )


def queue_finish(pipe: Any, args: FinishArgs) -> None:
    """Queue FINISH in ``pipe``: decode its result with :meth:`FinishReply.decode`."""
    FINISH.queue_call(pipe, args)


class SuspendArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One SUSPEND call. KEYS: the session registry, stream and lock."""

    keyspace: Keys
    session_id: str
    execution_id: str
    message_id: str
    #: WAITING_AGENT or WAITING_USER
    status: str
    now_ms: int
    worker_id: str
    #: what it waits for (JSON: wait_id, deadline, children or group_id)
    wait: bytes
    #: the handler's state (JSON)
    state: bytes
    #: the timeline entry's detail (JSON object)
    detail: bytes
    #: the question event XADDed to the session stream (b'' = none)
    event: bytes = b""
    stream_maxlen: int
    ttl_s: int
    #: the suspending run's trace context (JSON; b'' = none): its resume continues it
    trace: bytes = b""

    def keys(self) -> list[str]:
        k, session = self.keyspace, self.session_id
        return [k.session_registry(session), k.session_stream(session), k.session_lock(session)]

    def argv(self) -> list[Any]:
        return [
            self.execution_id,
            self.status,
            self.now_ms,
            self.worker_id,
            self.wait,
            self.state,
            self.detail,
            self.message_id,
            self.event,
            self.stream_maxlen,
            self.ttl_s,
            self.trace,
        ]


class Suspended(IntEnum):
    """SUSPEND's reply."""

    #: the record says it waits (and what for)
    WAITING = 1
    #: it had ended already: nothing written
    ENDED = 0
    #: its cancel was requested while it ran: end it instead
    CANCELLED = -1


async def suspend(redis: Any, args: SuspendArgs) -> Suspended:
    return Suspended(int(await SUSPEND.call(redis, args)))
