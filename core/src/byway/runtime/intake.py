"""Intake: reading the worker's streams and deciding what each entry is.

One blocking ``XREADGROUP`` covers every agent-type stream of the worker plus its own
control stream, reading at most ``min(fetch_count, free slots)`` entries, so a worker
never holds work it has no slot for (a Redis Cluster: a :class:`StreamReaders` per
stream). Tasks go to the starter; control commands (cancel, reload) are handled here;
an entry that does not decode is dead-lettered and acknowledged at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from redis.exceptions import RedisError, ResponseError

from byway._log import get_logger
from byway.errors import ProtocolError, WorkerError
from byway.flow import TIMEOUT_STATUS, WAIT_ID_KEY
from byway.protocol import (
    AskAgentCommand,
    CancelTaskCommand,
    ReloadPluginsCommand,
    ResumeCommand,
    decode_command,
    now_ms,
)
from byway.runtime.executor import Executor
from byway.runtime.plugin_host import PluginHost
from byway.runtime.services import WorkerServices
from byway.runtime.slots import Start
from byway.runtime.starter import Starter
from byway.runtime.util import cut, text
from byway.settings import is_cluster

__all__ = ["Intake", "StreamReaders"]

log = get_logger("byway.worker")
_json = msgspec.json.Encoder()

#: how long a worker with no free slot blocks on its own stream before looking again
_SATURATED_BLOCK_MS = 50
#: how much of a bad entry's reason and raw bytes its dead letter keeps
_REASON_KEPT = 300
_RAW_KEPT = 1024


class Intake:
    """The consume loop of one runner."""

    def __init__(
        self,
        services: WorkerServices,
        starter: Starter,
        executor: Executor,
        plugin_host: PluginHost,
        rejoin: Callable[..., Awaitable[bool]],
    ) -> None:
        self.services = services
        self.starter = starter
        self.executor = executor
        self.plugin_host = plugin_host
        #: re-creates what Redis lost of this worker (``groups=True``: its consumer groups)
        self.rejoin = rejoin
        self._group_failures = 0  # re-creating lost consumer groups failed this often in a row
        self._readers: StreamReaders | None = None

    async def consume_loop(self) -> None:
        s = self.services
        every = {**dict.fromkeys(s.streams, ">"), s.own_stream: ">"}
        own = {s.own_stream: ">"}
        group, consumer = s.config.consumer_group, s.worker_id
        backoff = 0.1
        if is_cluster(s.redis) and len(every) > 1:
            # one XREADGROUP cannot span slots: a reader per stream feeds this loop
            self._readers = StreamReaders(self, list(every))
        try:
            await self._consume(every, own, group, consumer, backoff)
        finally:
            if self._readers is not None:
                await self._readers.close()
                self._readers = None

    async def _consume(
        self, every: dict[str, str], own: dict[str, str], group: str, consumer: str, backoff: float
    ) -> None:
        reply: Any
        slots = self.services.slots
        while not self.services.stopping.is_set():
            if slots.quarantine and not slots.running:
                # in random order: suspects moved from a dead worker must not always line
                # up the same way, or the first would take every blow
                pick = slots.quarantine.pop(random.randrange(len(slots.quarantine)))
                await self.starter.start_batch([pick], alone=True)
                continue
            free = slots.free()
            if free > 0 and slots.backlog:
                batch, slots.backlog = slots.backlog[:free], slots.backlog[free:]
                await self.starter.start_batch(batch)
                continue
            if free > 0:
                streams, count, block = (
                    every,
                    min(self.services.config.fetch_count, free),
                    self.services.config.block_ms,
                )
            else:
                # every slot is busy: still read our own stream, where cancels arrive, and
                # look at the slots again soon
                streams, count, block = own, self.services.config.fetch_count, _SATURATED_BLOCK_MS
            try:
                if self._readers is not None:
                    reply = await self._readers.next(block)
                else:
                    reply = await self.services.redis.xreadgroup(
                        group,
                        consumer,
                        streams,  # type: ignore[arg-type]
                        count=count,
                        block=block,
                    )
                self.services.redis_ok_at = time.monotonic()
                backoff = 0.1
            except RedisError as exc:
                if _lost_group(exc):
                    await self.after_lost_group()
                    continue
                log.warning("read failed (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if reply:
                # a stop must not cut a batch in half: finish dispatching what was read
                dispatch = asyncio.ensure_future(self._dispatch(reply))
                try:
                    await asyncio.shield(dispatch)
                except asyncio.CancelledError:
                    await dispatch
                    raise
                except Exception:
                    # what was read stays pending (recovered later); the loop goes on
                    log.exception("dispatching a batch failed")
                    await asyncio.sleep(backoff)

    async def after_lost_group(self) -> None:
        """A read found a consumer group gone: re-create what Redis lost, then read again
        at once. A pause of 0.1 s keeps a group that cannot stay from spinning the loop;
        one that cannot be re-created (NOPERM, a writer deleting it) backs off to 5 s."""
        self.services.redis_ok_at = time.monotonic()  # Redis answered
        try:
            await self.rejoin(groups=True)
        except RedisError as exc:
            self._group_failures += 1
            if self._group_failures == 1:
                log.warning("could not re-create the consumer groups (%s); retrying", exc)
            await asyncio.sleep(min(0.1 * 2**self._group_failures, 5.0))
            return
        self._group_failures = 0
        await asyncio.sleep(0.1)

    async def _dispatch(self, reply: list[Any]) -> None:
        starts = await self.decode(reply)
        free = self.services.slots.free()
        if len(starts) > free:  # tasks sent straight to this busy worker wait their turn
            self.services.slots.backlog.extend(starts[free:])
            starts = starts[:free]
        if starts:
            await self.starter.start_batch(starts)

    async def decode(self, reply: list[Any]) -> list[Start]:
        """Handle control commands and bad entries; return the tasks to start.

        No entry can fail the others: one that does not decode is dead-lettered and
        acknowledged at once, and one whose handling meets a Redis error stays pending
        (recovered later) while the rest of the batch goes on."""
        starts: list[Start] = []
        signer = self.services.flow.signer  # signed commands: refuse what does not verify, first
        refused = (
            await signer.screen(
                self.services.redis,
                self.services.keys,
                reply,
                self.services.config.limits.max_command_bytes,
            )
            if signer
            else {}
        )
        for stream_raw, entries in reply:
            stream = text(stream_raw)
            for entry_raw, fields in entries:
                entry_id = text(entry_raw)
                try:
                    if (stream, entry_id) in refused:
                        reason = refused[stream, entry_id]
                        await self.dead_letter(stream, entry_id, fields, reason)
                        continue
                    start = await self._take(stream, entry_id, fields)
                except RedisError as exc:
                    log.warning("entry %s of %s stays pending (%s)", entry_id, stream, exc)
                    continue
                if start is not None:
                    starts.append(start)
        return starts

    async def _take(self, stream: str, entry_id: str, fields: Any) -> Start | None:
        """Decode one entry: a task to start, or None once it was handled here."""
        data = fields.get(b"data", b"") if isinstance(fields, dict) else b""
        limits = self.services.config.limits
        try:
            command = decode_command(
                data,
                max_bytes=limits.max_command_bytes,
                max_depth=limits.max_depth,
                forbid_braces=self.services.keys.schema == "v2",
            )
        except ProtocolError as exc:
            await self.dead_letter(stream, entry_id, fields, str(exc))
            agent_type = self.services.streams.get(stream, "")
            await self.services.answers.unreadable(
                data, limits.max_command_bytes, str(exc), agent_type
            )
            return None
        if isinstance(command, ResumeCommand) and WAIT_ID_KEY in command.header.metadata:
            command = _as_timeout(command)  # only the deadline's verdict, never a payload
        if isinstance(command, (AskAgentCommand, ResumeCommand)):
            return (stream, entry_id, command, data)
        if isinstance(command, CancelTaskCommand):
            await self.executor.cancel(command, tree=stream in self.services.streams)
        elif isinstance(command, ReloadPluginsCommand):
            self.plugin_host.start_reload(command)
        await self.services.ack(stream, entry_id)
        return None

    async def dead_letter(self, stream: str, entry_id: str, fields: Any, reason: str) -> None:
        """Move an entry that cannot be decoded aside (with the reason) and acknowledge it.

        What is kept is bounded whatever the entry holds: the reason cut to a few hundred
        characters and at most the first KiB of the raw entry (with its full size)."""
        reason = cut(reason, _REASON_KEPT)
        log.error("dead-lettering %s %s: %s", stream, entry_id, reason)
        raw = fields.get(b"data", b"") if isinstance(fields, dict) else b""
        raw = raw if isinstance(raw, bytes) else b""
        async with self.services.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(
                self.services.keys.dead_letters(),
                {
                    "data": _json.encode(
                        {
                            "stream": stream,
                            "entry_id": entry_id,
                            "reason": reason,
                            "worker_id": self.services.worker_id,
                            "timestamp": now_ms(),
                            "raw": raw[:_RAW_KEPT].decode("utf-8", "replace"),
                            "raw_bytes": len(raw),
                            "fields": sorted(text(f)[:64] for f in fields)[:8]
                            if isinstance(fields, dict)
                            else [],
                        }
                    )
                },
                maxlen=10_000,
                approximate=True,
            )
            pipe.xack(stream, self.services.config.consumer_group, entry_id)
            await pipe.execute()


def _as_timeout(command: ResumeCommand) -> ResumeCommand:
    """A deadline's Resume as the sweeper writes it: what else it carries is dropped."""
    data = command.reply_data if isinstance(command.reply_data, dict) else {}
    waiting = data.get("waiting_for")
    ids = [str(i)[:256] for i in waiting[:1000]] if isinstance(waiting, list) else []
    return msgspec.structs.replace(
        command,
        content="",
        status=TIMEOUT_STATUS,
        reply_data={"error": "timeout", "waiting_for": ids},
        extra_payload={},
    )


def _lost_group(exc: RedisError) -> bool:
    """A read failed because its stream or consumer group is gone (Redis lost them)."""
    message = str(exc)
    return isinstance(exc, ResponseError) and (
        message.startswith("NOGROUP") or "no longer exists" in message
    )


class StreamReaders:
    """One blocking reader per control stream, for a Redis Cluster (where one XREADGROUP
    cannot span streams of different slots). Each reader reads only while the runner has
    free slots (its own stream always, for cancels) and waits until what it read has been
    dispatched before it reads again, so the runner never takes more than it can start."""

    def __init__(self, intake: Intake, streams: list[str]) -> None:
        self.intake = intake
        self.inbox: asyncio.Queue[tuple[Any, asyncio.Future[None]]] = asyncio.Queue()
        self._handed: list[asyncio.Future[None]] = []
        self.tasks = [
            asyncio.create_task(
                self._read(s, s == intake.services.own_stream), name=f"byway-read-{s}"
            )
            for s in streams
        ]

    async def _read(self, stream: str, own: bool) -> None:
        services = self.intake.services
        config = services.config
        group, consumer = config.consumer_group, services.worker_id
        backoff = 0.1
        while True:
            free = services.slots.free()
            if not own and free <= 0:
                await asyncio.sleep(_SATURATED_BLOCK_MS / 1000)
                continue
            count = config.fetch_count if own else min(config.fetch_count, free)
            try:
                reply: Any = await services.redis.xreadgroup(
                    group, consumer, {stream: ">"}, count=count, block=config.block_ms
                )
                services.redis_ok_at = time.monotonic()
                backoff = 0.1
            except RedisError as exc:
                if _lost_group(exc):
                    await self.intake.after_lost_group()
                    continue
                log.warning("read of %s failed (%s); retrying in %.1fs", stream, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if reply:
                dispatched = asyncio.get_running_loop().create_future()
                await self.inbox.put((reply, dispatched))
                await dispatched

    async def next(self, block_ms: int) -> list[Any]:
        """What the readers got (merged), waiting up to ``block_ms`` for something."""
        for done in self._handed:  # the loop dispatched the previous batch
            if not done.done():
                done.set_result(None)
        self._handed = []
        for task in self.tasks:  # a reader that died takes the consume loop with it
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise WorkerError(f"{task.get_name()} stopped") from task.exception()
        try:
            first = await asyncio.wait_for(self.inbox.get(), block_ms / 1000)
        except TimeoutError:
            return []
        batch = [first]
        while not self.inbox.empty():
            batch.append(self.inbox.get_nowait())
        self._handed = [done for _, done in batch]
        return [entry for reply, _ in batch for entry in reply]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
