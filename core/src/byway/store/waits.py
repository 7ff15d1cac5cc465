"""What resumes a waiting execution besides a callee's reply: its task group completing
(GROUP_RESULT) and its deadline passing (CLAIM_DEADLINES)."""

from __future__ import annotations

from typing import Any

import msgspec

from byway.keys import Keys
from byway.store.script import load, raw, text

__all__ = [
    "CLAIM_DEADLINES",
    "GROUP_RESULT",
    "ClaimDeadlinesArgs",
    "GroupResultArgs",
    "GroupResultReply",
    "claim_deadlines",
    "queue_group_result",
]

GROUP_RESULT = load("group_result")
CLAIM_DEADLINES = load("claim_deadlines")


class GroupResultArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One GROUP_RESULT call: a child reports. KEYS: the task group hash, its results hash."""

    keyspace: Keys
    group_id: str
    child_message_id: str
    #: the child's result (JSON), kept once under its message id
    result: bytes
    ttl_s: int
    #: the caller sends the Resume (and marks the group 'resumed') itself
    outbox: bool = False

    def keys(self) -> list[str]:
        k = self.keyspace
        return [k.task_group(self.group_id), k.task_group_results(self.group_id)]

    def argv(self) -> list[Any]:
        return [
            self.child_message_id,
            self.result,
            self.ttl_s,
            self.group_id,
            "1" if self.outbox else "0",
        ]


class GroupResultReply(msgspec.Struct, frozen=True, kw_only=True):
    """``resumed``: this report completed the group and its waiting caller was resumed;
    in outbox mode ``resume`` is that Resume, for the caller to send to ``stream``."""

    resumed: bool = False
    stream: str = ""
    resume: bytes = b""

    @property
    def forward(self) -> tuple[str, bytes] | None:
        """(stream, resume) left for the caller to send (outbox mode), else None."""
        return (self.stream, self.resume) if self.stream else None

    @classmethod
    def decode(cls, reply: Any) -> GroupResultReply:
        """GROUP_RESULT's result in a pipeline (an error decodes as nothing resumed)."""
        if not isinstance(reply, list) or len(reply) != 3 or reply[0] != 1:
            return cls()
        return cls(resumed=True, stream=text(reply[1]), resume=raw(reply[2]))


def queue_group_result(pipe: Any, args: GroupResultArgs) -> None:
    """Queue GROUP_RESULT in ``pipe``: decode its result with :meth:`GroupResultReply.decode`."""
    GROUP_RESULT.queue_call(pipe, args)


class ClaimDeadlinesArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One CLAIM_DEADLINES call. KEYS: the deadlines sorted set."""

    keyspace: Keys
    now_ms: int
    #: at most this many waits
    limit: int = 100
    #: a claimed wait is due again after this long (its sweeper died)
    claim_ms: int = 30_000

    def keys(self) -> list[str]:
        return [self.keyspace.deadlines()]

    def argv(self) -> list[Any]:
        return [self.now_ms, self.limit, self.claim_ms]


async def claim_deadlines(redis: Any, args: ClaimDeadlinesArgs) -> list[bytes]:
    """The waits (JSON, as the sorted set holds them) whose deadline passed, now claimed."""
    return [raw(item) for item in await CLAIM_DEADLINES.call(redis, args)]
