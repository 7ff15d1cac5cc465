"""End batching: the ends of every task that finished meanwhile, in one round trip.

The first task to end writes at once; tasks that end while its round trip is in flight
are written together in its next round, so under load many ends share one round trip
and alone a task waits for nobody. What the scripts leave to send (outbox mode) is
forwarded by the outbox strategy after the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from redis.exceptions import RedisError

from byway._log import get_logger
from byway.runtime.endwrite import EndWrite
from byway.runtime.services import WorkerServices
from byway.store.script import execute

__all__ = ["EndBatcher"]

log = get_logger("byway.worker")


class EndBatcher:
    """Collects :class:`EndWrite` s and writes them in pipelined rounds."""

    def __init__(self, services: WorkerServices) -> None:
        self.services = services
        self._ending: list[EndWrite] = []
        self._flushing = False

    def end(self, write: EndWrite) -> Awaitable[None]:
        """Write ``write`` (with whatever else ends meanwhile): await what this returns, done
        once it is written (or given up on: then it stays pending for recovery). Not a
        coroutine itself, so that ending a task awaits no more than before the batcher."""
        self._ending.append(write)
        if self._flushing:
            return write.done  # the task writing now takes this end in its next round
        return self._flush_ends()  # write now; ends that arrive meanwhile join the next round

    async def _flush_ends(self) -> None:
        """Write the ends of every task that finished meanwhile in one pipelined round trip."""
        self._flushing = True
        try:
            while self._ending:
                batch, self._ending = self._ending, []
                try:
                    await self._write_ends(batch)
                except Exception:
                    log.exception("ending %d task(s) failed; left pending for recovery", len(batch))
                finally:
                    for write in batch:
                        if not write.done.done():
                            write.done.set_result(None)
        finally:
            self._flushing = False

    async def _write_ends(self, batch: list[EndWrite]) -> None:
        s = self.services
        outbox = s.outbox
        for attempt in range(6):
            try:
                async with s.redis.pipeline(transaction=False) as pipe:
                    for write in batch:
                        write.queue(
                            pipe,
                            s.flow,
                            s.config.consumer_group,
                            ack=not outbox.acks_late(write),
                            reply=not outbox.forwards,
                        )
                    results = await execute(s.redis, pipe)
                for item in results:
                    if isinstance(item, Exception):
                        log.error("ending a task failed: %s", item)
                for write in batch:
                    write.written(results)
                if outbox.forwards:  # no await at all when nothing is left to forward
                    await outbox.forward_ends(batch, results)
                return
            except RedisError as exc:
                delay = 0.1 * 2**attempt
                log.warning(
                    "could not end %d task(s) (%s); retrying in %.1fs", len(batch), exc, delay
                )
                await asyncio.sleep(delay)
        log.error(
            "gave up ending %s: left pending for recovery",
            ", ".join(w.context.message_id for w in batch),
        )
