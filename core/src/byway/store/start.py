"""START: a stream entry becomes a running execution, or is told why not (its verdict)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from byway.keys import Keys
from byway.store.script import load, raw, text

__all__ = ["START", "StartArgs", "StartReply", "queue_start"]

START = load("start")

#: what START decided: ``run`` (it runs now), ``done`` (it had ended), ``cancelled``
#: (cancelled before it started), ``stale`` (not the reply or entry its execution waits
#: for), ``deferred`` (queued behind its session's running root), ``poison`` (it killed
#: every worker it ran alone on), ``suspect`` (its last run died: start it again, alone)
Verdict = Literal["run", "done", "cancelled", "stale", "deferred", "poison", "suspect"]


class StartArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One START call. KEYS: the session registry, lock and queue, the set of queued
    sessions (the registry again in outbox mode: the caller adds a deferred session),
    the session's history list."""

    keyspace: Keys
    session_id: str
    message_id: str
    #: the id a new execution gets (when the message has no record yet)
    execution_id: str
    worker_id: str
    now_ms: int
    #: the record written when the message has none (a command another SDK wrote)
    record: bytes
    lock_lease_ms: int
    entry_id: str
    #: the control stream the entry was read from
    stream: str
    kind: Literal["ask", "resume"]
    #: a resume: the callee's message id ('' = the user)
    resume_from: str = ""
    #: a resume: the wait id a timeout ends ('' = not a timeout)
    resume_wait_id: str = ""
    #: a resume: the task group that completed ('' = none)
    resume_group_id: str = ""
    #: the command's JSON as read (queued again when its session moved on)
    command: bytes
    record_ttl_s: int
    lock_grace_ms: int
    #: runs alone that died before a task is poison
    max_solo_runs: int
    #: this start runs the task alone (a retry after its worker died)
    alone: bool = False
    outbox: bool = False
    #: the worker's agent-config snapshot version (kept from the first start on)
    config_version: str = ""
    #: history groups returned for a root ask (0 = none)
    history_limit: int = 0

    def keys(self) -> list[str]:
        k, session = self.keyspace, self.session_id
        registry = k.session_registry(session)
        return [
            registry,
            k.session_lock(session),
            k.session_queue(session),
            registry if self.outbox else k.queued_sessions(),
            k.session_history(session),
        ]

    def argv(self) -> list[Any]:
        return [
            self.message_id,
            self.execution_id,
            self.worker_id,
            self.now_ms,
            self.record,
            self.lock_lease_ms,
            self.entry_id,
            self.stream,
            self.kind,
            self.resume_from,
            self.resume_wait_id,
            self.resume_group_id,
            self.command,
            self.session_id,
            self.record_ttl_s,
            self.lock_grace_ms,
            self.max_solo_runs,
            "1" if self.alone else "0",
            "1" if self.outbox else "0",
            self.config_version,
            self.history_limit,
        ]


class StartReply(msgspec.Struct, frozen=True, kw_only=True):
    """START's verdict on one entry, and what comes with it."""

    verdict: Verdict
    execution_id: str
    #: run, poison: the record as it is now (JSON)
    record: bytes = b""
    #: run (a resume): the handler state the execution suspended with (JSON, or b'')
    state: bytes = b""
    #: run (a root ask with a history limit): the session's last history groups
    history: list[bytes] = []
    #: done, stale: the execution's status
    status: str = ""
    #: done: a queue item the session was handed on to, for the caller to forward
    handed: bytes = b""
    #: cancelled: why
    reason: str = ""
    #: deferred: the message id of the session's running root
    holder: str = ""
    #: poison: how many runs alone died
    runs: int = 0

    @property
    def note(self) -> str:
        """What the verdict is about: the status (done, stale), the holder (deferred), the
        reason (cancelled)."""
        return self.holder or self.reason or self.status

    @classmethod
    def decode(cls, reply: Any) -> StartReply:
        verdict, execution_id = text(reply[0]), text(reply[1])
        if verdict == "run":
            return cls(
                verdict="run",
                execution_id=execution_id,
                record=raw(reply[2]),
                state=raw(reply[3]),
                history=[raw(item) for item in reply[4]],
            )
        if verdict == "done":
            return cls(
                verdict="done", execution_id=execution_id, status=text(reply[2]),
                handed=raw(reply[3]),
            )  # fmt: skip
        if verdict == "stale":
            return cls(verdict="stale", execution_id=execution_id, status=text(reply[2]))
        if verdict == "cancelled":
            return cls(verdict="cancelled", execution_id=execution_id, reason=text(reply[2]))
        if verdict == "deferred":
            return cls(verdict="deferred", execution_id=execution_id, holder=text(reply[2]))
        if verdict == "poison":
            return cls(
                verdict="poison", execution_id=execution_id, record=raw(reply[2]),
                runs=int(reply[3]),
            )  # fmt: skip
        if verdict == "suspect":
            return cls(verdict="suspect", execution_id=execution_id)
        raise ValueError(f"START: unknown verdict {verdict!r}")


def queue_start(pipe: Any, args: StartArgs) -> None:
    """Queue START in ``pipe``: decode its result with :meth:`StartReply.decode`."""
    START.queue_call(pipe, args)
