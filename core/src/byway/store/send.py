"""SEND (a task to its agent type, or queued behind its session) and RESUME (a user's
answer, written only while its question is open): what clients and callers write."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

from byway.keys import Keys
from byway.store.script import load, raw, text

__all__ = [
    "RESUME",
    "SEND",
    "ResumeArgs",
    "ResumeReply",
    "SendArgs",
    "SendMode",
    "SendReply",
    "queue_send",
    "resume",
    "send",
]

SEND = load("send")
RESUME = load("resume")


class SendMode(StrEnum):
    """Where SEND writes (its ARGV 13)."""

    #: schema v1: the command, and a message handed on, are XADDed by the script
    DIRECT = "0"
    #: schema v2: only the session's slot; the caller sends the command and hand-ons
    OUTBOX = "1"
    #: schema v1 with signed commands: the (signed) command is XADDed by the script, a
    #: message handed on is returned for the caller to sign and send
    SIGNED = "2"


class SendArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One SEND call. KEYS: the target stream, the session registry, the agent type's
    workers, the session lock and queue, the agent type's strategy, the set of queued
    sessions; under schema v2 every key but the lock and queue is the registry (one slot:
    the script does not touch them)."""

    keyspace: Keys
    session_id: str
    target_agent_type: str
    #: the control stream the command goes to (KEYS 1 under schema v1; ARGV 14)
    stream: str
    #: the command's JSON (signed already in SendMode.SIGNED)
    command: bytes
    execution_id: str
    message_id: str
    #: the JSON of the record written when the message has none
    record: bytes
    record_ttl_s: int
    stream_maxlen: int = 0
    #: online-lease key prefix: '' skips the online check (schema v1 only)
    online_prefix: str = ""
    #: the worker the task must go to ('' = any worker of the agent type)
    target_worker: str = ""
    #: a root message: one writer per session applies
    root: bool = False
    #: multitask strategy ('' = the agent type's)
    strategy: str = ""
    lock_grace_ms: int = 600_000
    mode: SendMode = SendMode.DIRECT

    def keys(self) -> list[str]:
        k = self.keyspace
        registry = k.session_registry(self.session_id)
        lock, queue = k.session_lock(self.session_id), k.session_queue(self.session_id)
        if k.schema == "v2":  # every key of one call must share the session's slot
            return [registry, registry, registry, lock, queue, registry, registry]
        return [
            self.stream,
            registry,
            k.agent_type_workers(self.target_agent_type),
            lock,
            queue,
            k.agent_type_strategy(self.target_agent_type),
            k.queued_sessions(),
        ]

    def argv(self) -> list[Any]:
        return [
            self.command,
            self.execution_id,
            self.message_id,
            self.record,
            self.record_ttl_s,
            self.stream_maxlen,
            self.online_prefix,
            self.target_worker,
            "1" if self.root else "0",
            self.strategy,
            self.lock_grace_ms,
            self.session_id,
            self.mode.value,
            self.stream,
        ]


class SendReply(msgspec.Struct, frozen=True, kw_only=True):
    """What SEND did: refused (``error_code``), or ``disposition`` sent | queued |
    interrupt | duplicate."""

    accepted: bool
    #: AGENT_TYPE_UNAVAILABLE, WORKER_NOT_ONLINE or SESSION_BUSY when refused
    error_code: str = ""
    #: the stream entry ('' when the caller sends it, or nothing was sent)
    entry_id: str = ""
    execution_id: str = ""
    disposition: str = ""
    #: message id of the session's running root, if any
    holder: str = ""
    #: a queue item handed on, for the caller to forward (outbox modes), else b''
    handed: bytes = b""

    @classmethod
    def decode(cls, reply: Any) -> SendReply:
        if reply[0] == 0:
            return cls(accepted=False, error_code=text(reply[1]), holder=text(reply[2]))
        return cls(
            accepted=True,
            entry_id=text(reply[0]),
            execution_id=text(reply[1]),
            disposition=text(reply[2]),
            holder=text(reply[3]),
            handed=raw(reply[4]),
        )


async def send(redis: Any, args: SendArgs) -> SendReply:
    return SendReply.decode(await SEND.call(redis, args))


def queue_send(pipe: Any, args: SendArgs) -> None:
    """Queue SEND in ``pipe``: decode its result with :meth:`SendReply.decode`."""
    SEND.queue_call(pipe, args)


class ResumeArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One RESUME call (schema v1). KEYS: the session registry, the stream the answer
    goes to."""

    keyspace: Keys
    session_id: str
    stream: str
    #: the waiting execution's message id
    message_id: str
    #: the Resume's JSON (signed, if commands are)
    command: bytes
    stream_maxlen: int = 0

    def keys(self) -> list[str]:
        return [self.keyspace.session_registry(self.session_id), self.stream]

    def argv(self) -> list[Any]:
        return [self.message_id, self.command, self.stream_maxlen]


class ResumeReply(msgspec.Struct, frozen=True, kw_only=True):
    """The answer was ``written`` (its ``entry_id``), or refused: ``status`` is the
    execution's, 'UNKNOWN' (no such execution) or 'ANSWERED' (answered already)."""

    written: bool
    entry_id: str = ""
    status: str = ""

    @classmethod
    def decode(cls, reply: Any) -> ResumeReply:
        if reply[0] == 0:
            return cls(written=False, status=text(reply[1]))
        return cls(written=True, entry_id=text(reply[1]))


async def resume(redis: Any, args: ResumeArgs) -> ResumeReply:
    return ResumeReply.decode(await RESUME.call(redis, args))
