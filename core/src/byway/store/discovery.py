"""Service discovery's scripts: SD_HEARTBEAT registers or renews one instance and prunes
its service's lapsed leases; SD_READ reads a service's instances, size-checked, on
Redis's clock. The three keys of one service share a slot under schema v2."""

from __future__ import annotations

from typing import Any

import msgspec

from byway.keys import Keys
from byway.store.script import load, raw, text

__all__ = [
    "SD_HEARTBEAT",
    "SD_READ",
    "HeartbeatArgs",
    "RawInstance",
    "ReadArgs",
    "ReadReply",
    "heartbeat",
    "read",
]

SD_HEARTBEAT = load("sd_heartbeat")
SD_READ = load("sd_read")


def _service_keys(keyspace: Keys, service: str) -> list[str]:
    return [
        keyspace.sd_active(service),
        keyspace.sd_instances(service),
        keyspace.sd_leases(service),
    ]


class HeartbeatArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One SD_HEARTBEAT call. KEYS: the service's active set, instances and leases."""

    keyspace: Keys
    service: str
    instance_id: str
    #: the instance as JSON (by-framework's shape)
    instance: bytes
    #: how long after this heartbeat the instance stays live (0: no lease)
    lease_ms: int
    #: a planted lease longer than this is pruned as if it were this long
    longest_lease_ms: int = 3_600_000
    #: lapsed entries removed per call at most
    prune_limit: int = 100

    def keys(self) -> list[str]:
        return _service_keys(self.keyspace, self.service)

    def argv(self) -> list[Any]:
        return [
            self.instance_id,
            self.instance,
            self.lease_ms,
            self.longest_lease_ms,
            self.prune_limit,
        ]


async def heartbeat(redis: Any, args: HeartbeatArgs) -> int:
    """Write the instance and its heartbeat; the heartbeat's time (Redis's clock, ms)."""
    return int(await SD_HEARTBEAT.call(redis, args))


class ReadArgs(msgspec.Struct, frozen=True, kw_only=True):
    """One SD_READ call. KEYS: the service's active set, instances and leases."""

    keyspace: Keys
    service: str
    #: instances read at most (the freshest heartbeats first)
    max_instances: int = 256
    #: an instance JSON longer than this is not sent
    max_bytes: int = 65_536

    def keys(self) -> list[str]:
        return _service_keys(self.keyspace, self.service)

    def argv(self) -> list[Any]:
        return [self.max_instances, self.max_bytes]


class RawInstance(msgspec.Struct, frozen=True):
    """One entry as Redis holds it, not validated yet."""

    id: bytes
    heartbeat: str
    lease: str
    size: int
    data: bytes


class ReadReply(msgspec.Struct, frozen=True):
    now_ms: int
    entries: list[RawInstance]


async def read(redis: Any, args: ReadArgs) -> ReadReply:
    reply = await SD_READ.call(redis, args)
    items = list(reply or [0])
    entries = [
        RawInstance(
            raw(items[i]),
            text(items[i + 1]),
            text(items[i + 2]),
            int(items[i + 3]),
            raw(items[i + 4]),
        )
        for i in range(1, len(items) - 4, 5)
    ]
    return ReadReply(int(items[0]), entries)
