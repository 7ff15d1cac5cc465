"""Nothing is lost: a dead worker's tasks are taken over by live workers.

A task's stream entry stays pending (unacknowledged) until its end is written. While a
worker lives it keeps its pending entries fresh (XCLAIM to itself, which resets their
idle time) every lease/3 seconds, however long the tasks run. Every worker looks for
entries idle longer than a lease whose owner has no lease any more, claims them
(XCLAIM with that minimum idle time, so two workers never both get one) and runs them
again. The START script makes that safe: a finished execution is only acknowledged; an
interrupted one runs again at once, beside other tasks (a survivor busy with long tasks
does not make it wait), and if that run dies too, alone, so that a task which kills its
worker takes no more tasks with it. After ``max_deliveries`` runs alone whose worker died
each time, it goes to the dead-letter stream and ends FAILED.

A worker restarted with the same id first takes back what it held before it died (at
once: the lease of a provably dead process is taken over, see ``byway._process``). On a
clean stop, what did not finish within the drain timeout is handed back at once (marked
idle), so other workers take it without waiting for the lease to lapse.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import ResponseError

from byway._log import get_logger
from byway.protocol import now_ms
from byway.settings import is_cluster

if TYPE_CHECKING:
    from byway.config import RunnerConfig
    from byway.keys import Keys
    from byway.runtime.slots import Slots

__all__ = ["Recovery"]

log = get_logger("byway.recovery")
_json = msgspec.json.Encoder()

#: entries one reclaim pass looks at per stream
_BATCH = 100


class Recovery:
    """Reclaim and hand-back for one runner: what it holds is in ``slots``; ``streams``
    are its agent-type streams, ``own_stream`` its control stream."""

    def __init__(
        self,
        slots: Slots,
        redis: Any,
        keys: Keys,
        config: RunnerConfig,
        *,
        consumer: str,
        streams: list[str],
        own_stream: str,
    ) -> None:
        self.slots = slots
        self.redis = redis
        self.keys = keys
        self.config = config
        self.streams = streams
        self.own_stream = own_stream
        self.group = config.consumer_group
        self.consumer = consumer
        # a live owner refreshes its entries every lease/3, and its lease is checked too
        self.claim_idle_ms = int(config.lease_seconds * 1000)

    async def ensure_groups(self) -> int:
        """Create the consumer group of each of this worker's streams where it is missing
        (first start, or Redis lost it: XREADGROUP then answers NOGROUP). New groups read
        from the start of their stream, so what was sent meanwhile is not skipped. Returns
        how many groups were created."""
        created = 0
        for stream in [*self.streams, self.own_stream]:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            else:
                created += 1
        return created

    async def refresh(self) -> None:
        """Reset the idle time of every entry this worker holds (it is alive)."""
        in_flight = self.slots.in_flight()
        if not in_flight:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in in_flight.items():
                pipe.xclaim(stream, self.group, self.consumer, 0, list[Any](ids), justid=True)
            await pipe.execute(raise_on_error=False)

    async def own_pending(self) -> list[Any]:
        """What an earlier process with this worker id held when it died (XREADGROUP 0)."""
        streams: dict[Any, Any] = {
            **dict.fromkeys(self.streams, "0"),
            self.own_stream: "0",
        }
        redis, count = self.redis, self.config.max_concurrency
        reply: Any
        if is_cluster(redis):  # one read per stream: they live in different slots
            reply = []
            for stream in streams:
                reply += (
                    await redis.xreadgroup(self.group, self.consumer, {stream: "0"}, count=count)
                    or []
                )
        else:
            reply = await redis.xreadgroup(self.group, self.consumer, streams, count=count)
        found = [(s, [e for e in entries if e[1]]) for s, entries in reply or []]
        found = [(s, entries) for s, entries in found if entries]
        if found:
            count = sum(len(entries) for _, entries in found)
            log.info("taking back %d task(s) this worker id held before a restart", count)
        return found

    async def reclaim(self) -> list[Any]:
        """Claim entries whose owner's lease lapsed; returns them like an XREADGROUP reply."""
        redis, keys = self.redis, self.keys
        claimed: list[Any] = []
        for stream in self.streams:
            try:
                pending: Any = await redis.xpending_range(
                    stream, self.group, min="-", max="+", count=_BATCH, idle=self.claim_idle_ms
                )
            except ResponseError:
                continue  # the stream or group is gone
            owners = sorted({p["consumer"].decode() for p in pending} - {self.consumer})
            alive: dict[str, Any] = {}
            if owners:
                async with redis.pipeline(transaction=False) as pipe:
                    for owner in owners:
                        pipe.exists(keys.worker_online(owner))
                    alive = dict(zip(owners, await pipe.execute(), strict=True))
            # ours but idle: not running here (its end could not be written): run it again
            held = {entry_id for ids in self.slots.in_flight().values() for entry_id in ids}
            alive[self.consumer] = False
            orphans = [
                p
                for p in pending
                if not alive.get(p["consumer"].decode(), True)
                and (p["consumer"].decode() != self.consumer or _text(p["message_id"]) not in held)
            ]
            if not orphans:
                continue
            ids = [p["message_id"] for p in orphans]
            entries: Any = await redis.xclaim(
                stream, self.group, self.consumer, self.claim_idle_ms, ids
            )
            gone = await self._deleted(stream, ids, entries)
            if gone:  # deleted from the stream while pending: nothing left to run
                await redis.xack(stream, self.group, *gone)
            live = [e for e in entries if e[1]]
            if live:
                owners_of = sorted({p["consumer"].decode() for p in orphans})
                log.warning(
                    "took over %d task(s) from dead worker(s) or stalled ends %s on %s",
                    len(live),
                    ", ".join(owners_of),
                    stream,
                )
                claimed.append((stream.encode(), live))
        return claimed

    async def _deleted(self, stream: str, ids: list[Any], claimed: list[Any]) -> list[Any]:
        """Which of ``ids`` no longer exist in the stream. An id XCLAIM did not return is
        not necessarily deleted: another worker may have claimed it a moment earlier (its
        idle time is short again), and must keep it pending. So ask the stream."""
        gone = [e[0] for e in claimed if not e[1]]  # Redis 6.2: a deleted entry, no fields
        returned = {e[0] for e in claimed}
        missing = [i for i in ids if i not in returned]
        if missing:
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry_id in missing:
                    pipe.xrange(stream, entry_id, entry_id, count=1)
                found = await pipe.execute()
            gone += [i for i, hit in zip(missing, found, strict=True) if not hit]
        return gone

    async def trim(self) -> int:
        """Trim this worker's control streams below the oldest entry any group still needs
        (its oldest pending entry, or the first it has not read); never an unacknowledged
        one. Returns how many entries went."""
        redis = self.redis
        removed = 0
        for stream in [*self.streams, self.own_stream]:
            try:
                groups: Any = await redis.xinfo_groups(stream)
            except ResponseError:
                continue
            if not groups:
                continue  # nobody consumes it (yet): keep everything
            floor: tuple[int, int] | None = None
            for group in groups:
                name = group["name"]
                oldest = _next_id(group["last-delivered-id"])
                if int(group["pending"]):
                    summary: Any = await redis.xpending(stream, name)
                    if summary["min"] is not None:  # all acknowledged meanwhile: None
                        oldest = min(oldest, _parse_id(summary["min"]))
                floor = oldest if floor is None else min(floor, oldest)
            if floor is not None and floor > (0, 0):
                removed += int(
                    await redis.xtrim(stream, minid=f"{floor[0]}-{floor[1]}", approximate=False)
                )
        return removed

    async def hand_back(self, items: list[tuple[str, str]]) -> None:
        """Mark entries this worker gives up as long idle: others claim them at once."""
        by_stream: dict[str, list[str]] = defaultdict(list)
        for stream, entry_id in items:
            by_stream[stream].append(entry_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xclaim(
                    stream,
                    self.group,
                    self.consumer,
                    0,
                    list[Any](ids),
                    idle=self.claim_idle_ms * 10,
                    justid=True,
                )
            await pipe.execute(raise_on_error=False)
        log.info("handed back %d unfinished task(s) for other workers", len(items))

    def dead_letter_record(self, stream: str, entry_id: str, raw: bytes, runs: int) -> bytes:
        return _json.encode(
            {
                "stream": stream,
                "entry_id": entry_id,
                "reason": f"its worker died each of the {runs} times it ran alone "
                f"(max_deliveries={self.config.max_deliveries})",
                "deliveries": runs,
                "worker_id": self.consumer,
                "timestamp": now_ms(),
                "raw": raw[:1024].decode("utf-8", "replace"),
                "raw_bytes": len(raw),
            }
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parse_id(value: bytes | str) -> tuple[int, int]:
    ms, _, seq = _text(value).partition("-")
    return int(ms), int(seq or 0)


def _next_id(value: bytes | str) -> tuple[int, int]:
    ms, seq = _parse_id(value)
    return ms, seq + 1
