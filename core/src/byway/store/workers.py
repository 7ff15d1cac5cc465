"""A worker's online lease, compare-and-set on its token (RENEW_LEASE, RELEASE_LEASE), and
finding a live worker of an agent type in one round trip (FIND_ONLINE, schema v1)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import msgspec

from byway.keys import Keys
from byway.store.script import load, text

__all__ = [
    "FIND_ONLINE",
    "RELEASE_LEASE",
    "RENEW_LEASE",
    "FindOnlineArgs",
    "LeaseArgs",
    "Renewed",
    "find_online",
    "release_lease",
    "renew_lease",
]

RENEW_LEASE = load("renew_lease")
RELEASE_LEASE = load("release_lease")
FIND_ONLINE = load("find_online")


class LeaseArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One RENEW_LEASE (``lease`` and ``lease_ms`` given) or RELEASE_LEASE call.
    KEYS: the worker's online lease."""

    keyspace: Keys
    worker_id: str
    #: the token the lease must hold (ours; or a dead process's, taking its lease over)
    token: str
    #: the lease written (JSON)
    lease: bytes = b""
    lease_ms: int = 0

    def keys(self) -> list[str]:
        return [self.keyspace.worker_online(self.worker_id)]

    def argv(self) -> list[Any]:
        return [self.token, self.lease, self.lease_ms]


class Renewed(IntEnum):
    """RENEW_LEASE's reply."""

    #: another process holds the worker id now
    TAKEN = 0
    RENEWED = 1
    #: the lease was gone (lapsed, or Redis lost it) and is ours again
    RESTORED = 2


async def renew_lease(redis: Any, args: LeaseArgs) -> Renewed:
    return Renewed(int(await RENEW_LEASE.call(redis, args) or 0))


async def release_lease(redis: Any, args: LeaseArgs) -> bool:
    """Delete the lease if its token is ours; whether it was."""
    return bool(await RELEASE_LEASE.run(redis, args.keys(), [args.token]))


class FindOnlineArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One FIND_ONLINE call. KEYS: the agent type's workers."""

    keyspace: Keys
    agent_type: str
    #: the worker that must be live ('' = any worker of the agent type)
    target_worker: str = ""

    def keys(self) -> list[str]:
        return [self.keyspace.agent_type_workers(self.agent_type)]

    def argv(self) -> list[Any]:
        return [self.keyspace.worker_online(""), self.target_worker]


async def find_online(redis: Any, args: FindOnlineArgs) -> str | None:
    """The id of one live worker, or None."""
    found = await FIND_ONLINE.call(redis, args)
    return text(found) if found else None
