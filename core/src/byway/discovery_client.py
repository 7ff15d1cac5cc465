"""Finding a service's live instances: a cached read, round-robin or random choice, and a
failure count that takes an instance out of rotation for a while.

An instance is *live* when its last heartbeat is younger than its lease (if it declared
one) and than the caller's ``health_threshold_ms`` (by-framework's heartbeat-age
threshold; :data:`~byway.discovery.NO_HEALTH_CHECK` turns that one off). It is *down*
after ``failure_threshold`` failures in a row reported with :meth:`DiscoveryClient.mark_failure`
(the HTTP client reports connection errors, timeouts and 5xx), until
``failure_cooldown`` seconds pass; then it gets one request again, and a success
clears its count. Ages are measured on Redis's clock, the one heartbeats are written by.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from types import TracebackType

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from byway._log import get_logger
from byway.discovery import (
    DEFAULT_HEALTH_THRESHOLD_MS,
    MAX_INSTANCE_BYTES,
    NO_HEALTH_CHECK,
    ServiceInstance,
    check_service_name,
    resolve_redis,
)
from byway.errors import ConfigurationError, ProtocolError
from byway.keys import Keys
from byway.settings import RedisSettings
from byway.store.discovery import RawInstance, ReadArgs, read

__all__ = ["STRATEGIES", "DiscoveryClient"]

log = get_logger("byway.discovery")

#: ``discover``'s strategies (``round_robin`` is accepted for ``round-robin``)
STRATEGIES = ("random", "round-robin")
_MAX_INSTANCES = 256
_MAX_LEASE_MS = 3_600_000
_MAX_LOGGED = 4096


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """A service's instances as last read, and when (Redis's and our clock)."""

    instances: tuple[ServiceInstance, ...]
    server_ms: int
    read_at: float

    def now_ms(self) -> float:
        """Redis's clock now, estimated from the read's."""
        return self.server_ms + (time.monotonic() - self.read_at) * 1000


@dataclass(slots=True)
class _Health:
    failures: int = 0
    down_until: float = 0.0


class DiscoveryClient:
    """Cached service lookup with load balancing (by-framework's ``DiscoveryClient``).

    ``cache_interval``: seconds a service's instance list is reused before it is read
    again. ``failure_threshold`` failures in a row take an instance out of rotation for
    ``failure_cooldown`` seconds. Without ``redis_client`` it opens (and closes) a client
    from ``settings``; with neither it uses the process's client (``get_redis``).
    """

    def __init__(
        self,
        redis_client: aioredis.Redis | None = None,
        cache_interval: float = 5,
        *,
        settings: RedisSettings | None = None,
        keys: Keys | None = None,
        failure_threshold: int = 3,
        failure_cooldown: float = 10.0,
    ) -> None:
        if cache_interval < 0:
            raise ConfigurationError(
                f"cache_interval: expected >= 0 seconds, got {cache_interval!r}"
            )
        if isinstance(failure_threshold, bool) or failure_threshold < 1:
            raise ConfigurationError(f"failure_threshold: expected >= 1, got {failure_threshold!r}")
        if failure_cooldown < 0:
            raise ConfigurationError(
                f"failure_cooldown: expected >= 0 seconds, got {failure_cooldown!r}"
            )
        self.redis, self._owns_redis, self.keys = resolve_redis(redis_client, settings, keys)
        self.cache_interval = cache_interval
        self.failure_threshold = failure_threshold
        self.failure_cooldown = failure_cooldown
        self._cache: dict[str, _Snapshot] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._rr_counters: dict[str, int] = {}
        self._health: dict[tuple[str, str], _Health] = {}
        self._logged: set[tuple[str, bytes, int]] = set()
        self._watched: set[str] = set()
        self._refresh_task: asyncio.Task[None] | None = None

    # -- lookup ----------------------------------------------------------------------------

    async def get_instances(
        self,
        service_name: str,
        force_refresh: bool = False,
        health_threshold_ms: int = DEFAULT_HEALTH_THRESHOLD_MS,
    ) -> list[ServiceInstance]:
        """The service's live instances (sorted by id), read again when the cache is
        older than ``cache_interval`` or ``force_refresh`` is set."""
        check_service_name(service_name)
        snapshot = self._cache.get(service_name)
        stale = snapshot is None or time.monotonic() - snapshot.read_at > self.cache_interval
        if force_refresh or stale:
            snapshot = await self._refresh(service_name, snapshot)
        assert snapshot is not None
        now = snapshot.now_ms()
        return [
            replace(i)  # a copy: callers may change theirs
            for i in snapshot.instances
            if _live(i, now, health_threshold_ms)
        ]

    async def discover(
        self,
        service_name: str,
        strategy: str = "random",
        health_threshold_ms: int = DEFAULT_HEALTH_THRESHOLD_MS,
        *,
        exclude: Collection[str] = (),
    ) -> ServiceInstance | None:
        """One live instance that is not down (nor in ``exclude``, instance ids), chosen
        by ``strategy`` (``random`` or ``round-robin``); None when there is none. When
        every candidate is down, one of them is tried anyway."""
        strategy = strategy.replace("_", "-")
        if strategy not in STRATEGIES:
            raise ConfigurationError(f"strategy: expected one of {STRATEGIES}, got {strategy!r}")
        live = [
            i
            for i in await self.get_instances(service_name, health_threshold_ms=health_threshold_ms)
            if i.id not in exclude
        ]
        now = time.monotonic()
        candidates = [i for i in live if not self._is_down(service_name, i.id, now)] or live
        if not candidates:
            return None
        if strategy == "random":
            return random.choice(candidates)
        counter = self._rr_counters.get(service_name, 0)
        self._rr_counters[service_name] = counter + 1
        return candidates[counter % len(candidates)]

    # -- health ----------------------------------------------------------------------------

    def mark_failure(self, service_name: str, instance_id: str) -> None:
        """Count one failure of the instance; at ``failure_threshold`` it is down for
        ``failure_cooldown`` seconds (again after each further failure)."""
        health = self._health.setdefault((service_name, instance_id), _Health())
        health.failures += 1
        if health.failures >= self.failure_threshold:
            if health.failures == self.failure_threshold:
                log.warning(
                    "service %s: instance %s is down after %d failures",
                    service_name,
                    instance_id,
                    health.failures,
                )
            health.down_until = time.monotonic() + self.failure_cooldown

    def mark_success(self, service_name: str, instance_id: str) -> None:
        """The instance answered: its failure count starts again from zero."""
        self._health.pop((service_name, instance_id), None)

    def failures(self, service_name: str, instance_id: str) -> int:
        """Failures in a row counted for the instance."""
        health = self._health.get((service_name, instance_id))
        return health.failures if health else 0

    def is_down(self, service_name: str, instance_id: str) -> bool:
        """Whether the instance is out of rotation now."""
        return self._is_down(service_name, instance_id, time.monotonic())

    def _is_down(self, service_name: str, instance_id: str, now: float) -> bool:
        health = self._health.get((service_name, instance_id))
        return (
            health is not None
            and health.failures >= self.failure_threshold
            and now < health.down_until
        )

    # -- background refresh ----------------------------------------------------------------

    def watch(self, service_name: str) -> None:
        """Read ``service_name`` again every ``cache_interval`` seconds in the background."""
        self._watched.add(check_service_name(service_name))
        if self._refresh_task is None:
            self._refresh_task = asyncio.create_task(self._refresh_loop(), name="byway-sd-watch")

    async def close(self) -> None:
        """Stop the background refresh; close the Redis client if this client opened it."""
        task, self._refresh_task = self._refresh_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._owns_redis:
            self._owns_redis = False
            await self.redis.aclose()

    async def __aenter__(self) -> DiscoveryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(max(self.cache_interval, 0.1))
            for name in sorted(self._watched):
                with contextlib.suppress(RedisError, OSError):  # _refresh logged it
                    await self._refresh(name, self._cache.get(name))

    # -- reading ---------------------------------------------------------------------------

    async def _refresh(self, service_name: str, previous: _Snapshot | None) -> _Snapshot:
        lock = self._locks.setdefault(service_name, asyncio.Lock())
        async with lock:
            current = self._cache.get(service_name)
            if current is not None and current is not previous:
                return current  # another caller read it meanwhile
            try:
                reply = await read(
                    self.redis,
                    ReadArgs(
                        keyspace=self.keys,
                        service=service_name,
                        max_instances=_MAX_INSTANCES,
                        max_bytes=MAX_INSTANCE_BYTES,
                    ),
                )
            except (RedisError, OSError) as exc:
                if previous is None:
                    raise
                log.warning("service %s: read failed, using the last list: %s", service_name, exc)
                return previous
            instances = [i for e in reply.entries if (i := self._validated(service_name, e))]
            instances.sort(key=lambda i: i.id)
            snapshot = _Snapshot(tuple(instances), reply.now_ms, time.monotonic())
            self._cache[service_name] = snapshot
            ids = {i.id for i in instances}
            for key in [k for k in self._health if k[0] == service_name and k[1] not in ids]:
                del self._health[key]
            return snapshot

    def _validated(self, service_name: str, entry: RawInstance) -> ServiceInstance | None:
        """The entry as an instance, or None (logged once per entry) if it is not one."""
        try:
            if not entry.data:
                if entry.size > 0:
                    raise ProtocolError(
                        f"instance: {entry.size} bytes (at most {MAX_INSTANCE_BYTES})"
                    )
                return None  # deregistered between the two writes: not an error
            instance = ServiceInstance.from_json(entry.data)
            if instance.id.encode() != entry.id:
                raise ProtocolError(f"id: the entry says {instance.id!r:.80}, its key another")
            instance.last_heartbeat = int(float(entry.heartbeat))
            instance.lease_ms = min(int(entry.lease), _MAX_LEASE_MS) if entry.lease.isdigit() else 0
        except Exception as exc:  # whatever a planted entry provokes skips that entry only
            mark = (service_name, entry.id[:300], hash(entry.data))
            if mark not in self._logged:
                if len(self._logged) >= _MAX_LOGGED:
                    self._logged.clear()
                self._logged.add(mark)
                log.warning("service %s: skipping entry %r: %s", service_name, entry.id[:80], exc)
            return None
        return instance


#: how far ahead of Redis's clock a heartbeat may be (the scripts' 5 s)
_MAX_AHEAD_MS = 5_000


def _live(instance: ServiceInstance, now_ms: float, threshold_ms: int) -> bool:
    age = now_ms - instance.last_heartbeat
    if age < -_MAX_AHEAD_MS:  # stamped by Redis's clock: this far ahead, it was planted
        return False
    if instance.lease_ms > 0 and age > instance.lease_ms:
        return False
    return threshold_ms == NO_HEALTH_CHECK or threshold_ms < 0 or age <= threshold_ms
