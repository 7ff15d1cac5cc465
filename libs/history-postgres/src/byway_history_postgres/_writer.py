"""The write-behind buffer: every write goes through it, in order, and survives outages.

One task writes what is queued, oldest first, up to ``batch_rows`` rows per transaction.
While PostgreSQL answers, a caller that asks to wait (with little queued ahead of it) is
released once its rows are committed. Failures fall in three kinds:

- connection-level (:func:`outage`: the network, a timeout, a server shutting down or out
  of connections): PostgreSQL counts as down. One warning, waiting callers are released at
  once (their rows stay queued), new writes queue without waiting, and the flush is
  retried with backoff (0.1 s doubling to 5 s) until it goes through (one info line then).
  Nothing queued is lost unless the queue would pass ``max_rows`` (new writes are dropped
  and counted, one error line per outage) or the process stops while PostgreSQL is still
  down (counted as abandoned);
- invalid data (SQLSTATE classes 22 and 23: a NUL character in a JSON string, say): each
  write of the batch is retried alone and one refused again is dropped with a warning
  (``rejected``): one bad row never holds up the rows behind it;
- anything else PostgreSQL refuses (permission denied, a missing table...): the batch is
  tried ``_MAX_ATTEMPTS`` times with the same backoff, then each of its writes alone, and
  those still refused are dropped (``failed``), so such an error never blocks the queue.
  One error line per kind of error (its SQLSTATE) for the store's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from byway._log import get_logger
from byway_history_postgres._types import HistoryStats, HistoryUnavailableError

__all__ = ["Op", "Writer", "outage"]

log = get_logger("byway.history_postgres")

_MIN_DELAY, _MAX_DELAY = 0.1, 5.0
#: tries of a batch PostgreSQL refuses with an error that is neither an outage nor invalid
#: data, before its writes are tried alone and those still refused dropped
_MAX_ATTEMPTS = 3
#: a caller asking to wait waits only with at most this many rows queued ahead of it
WAIT_AHEAD_ROWS = 1_000

#: errors that mean PostgreSQL cannot be reached now (not that it refuses this data)
_OUTAGES: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError
    TimeoutError,  # asyncio's too: a connect, acquire or command timeout
    HistoryUnavailableError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08: ConnectionDoesNotExistError...
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


@dataclass(slots=True)
class Op:
    """One write: ``kind`` names what ``rows`` are (the store knows how to write them);
    ``size`` counts them against the buffer's bound."""

    kind: str
    rows: Any
    size: int
    done: asyncio.Future[None] | None = None


def outage(exc: BaseException) -> bool:
    """The error is connection-level: PostgreSQL is unreachable, not refusing the data."""
    return isinstance(exc, _OUTAGES)


def _kind(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None)
    return f"{type(exc).__name__} {state}" if state else type(exc).__name__


def _invalid_data(exc: BaseException) -> bool:
    """PostgreSQL refused the data itself (retrying the same rows cannot help)."""
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and state[:2] in ("22", "23")


class Writer:
    """Writes :class:`Op` s in order through ``flush(ops)`` (one transaction per call)."""

    def __init__(
        self,
        flush: Callable[[list[Op]], Awaitable[None]],
        *,
        max_rows: int,
        batch_rows: int = 5_000,
    ) -> None:
        self._flush = flush
        self.max_rows = max_rows
        self.batch_rows = batch_rows
        self.stats = HistoryStats()
        self._queue: deque[Op] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stop = asyncio.Event()  # cuts a retry's backoff short
        #: monotonic time PostgreSQL went down (None: it answers)
        self.down_since: float | None = None
        self._full_logged = False
        #: back after an outage, with rows from it still queued
        self._draining = False
        #: the kinds of refusal (not outages) already logged
        self._refusals_logged: set[str] = set()

    @property
    def down(self) -> bool:
        return self.down_since is not None

    @property
    def behind(self) -> bool:
        """Retrying through an outage with writes queued, or draining what queued during
        one: a read now would wait on PostgreSQL or miss what is queued."""
        return (self.down and bool(self._queue)) or self._draining

    def put(self, op: Op, *, wait: bool = False) -> bool:
        """Queue ``op``; whether it was (False: dropped, the buffer being full or the
        writer closed). With ``wait``, PostgreSQL up and at most :data:`WAIT_AHEAD_ROWS`
        rows queued ahead, ``op.done`` is a future done once the op is written or once the
        write fails. Never raises, never blocks."""
        if self._closing:
            self.stats.abandoned += op.size
            return False
        if self.stats.buffered + op.size > self.max_rows:
            self.stats.dropped += op.size
            if not self._full_logged:
                self._full_logged = True
                log.error(
                    "history buffer full (%d rows): dropping new writes until PostgreSQL is back",
                    self.max_rows,
                )
            return False
        if wait and not self.down and self.stats.buffered <= WAIT_AHEAD_ROWS:
            op.done = asyncio.get_running_loop().create_future()
        self._queue.append(op)
        self.stats.buffered += op.size
        self.stats.peak_buffered = max(self.stats.peak_buffered, self.stats.buffered)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="byway-history-writer")
        self._wake.set()
        return True

    async def close(self, timeout: float) -> None:
        """Write what is queued (for up to ``timeout`` seconds), then stop."""
        self._closing = True
        self._wake.set()
        self._stop.set()
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=timeout)
        if not done:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue:
            lost = sum(op.size for op in self._queue)
            self.stats.abandoned += lost
            self.stats.buffered = 0
            log.error("history: %d row(s) not written: PostgreSQL is still unreachable", lost)
            self._release_all()
            self._queue.clear()

    # -- the writing task ------------------------------------------------------------------

    def _batch(self) -> list[Op]:
        batch: list[Op] = []
        rows = 0
        for op in self._queue:
            if batch and rows + op.size > self.batch_rows:
                break
            batch.append(op)
            rows += op.size
        return batch

    def _refused(self, op: Op, exc: BaseException) -> None:
        """Drop the op at the head of the queue: PostgreSQL kept refusing it."""
        kind = _kind(exc)
        if kind not in self._refusals_logged:
            self._refusals_logged.add(kind)
            log.error(
                "history: PostgreSQL refused %s rows %d times (%s: %s); dropping them "
                "(stats.failed counts these; no further line for this error)",
                op.kind,
                _MAX_ATTEMPTS,
                kind,
                exc,
            )
        self._queue.popleft()
        self.stats.buffered -= op.size
        self.stats.failed += op.size
        if op.done is not None and not op.done.done():
            op.done.set_result(None)

    def _written(self, count: int, *, rejected: bool = False) -> None:
        """The first ``count`` queued ops are done (written, or refused as invalid)."""
        for _ in range(count):
            op = self._queue.popleft()
            self.stats.buffered -= op.size
            if rejected:
                self.stats.rejected += op.size
            else:
                self.stats.written += op.size
            if op.done is not None and not op.done.done():
                op.done.set_result(None)

    def _release_all(self) -> None:
        for op in self._queue:
            if op.done is not None and not op.done.done():
                op.done.set_result(None)

    async def _run(self) -> None:
        delay = _MIN_DELAY
        refusals = 0  # failures in a row that were neither an outage nor invalid data
        while True:
            if not self._queue:
                self._draining = False
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._batch()
            failure = await self._try(self._write_batch, batch)
            if failure is not None and not outage(failure):
                if not _invalid_data(failure):
                    refusals += 1
                give_up = refusals >= _MAX_ATTEMPTS
                failure = await self._try(self._one_by_one, (len(batch), give_up))
            if failure is None:
                delay, refusals = _MIN_DELAY, 0
                self.came_back()
                continue
            if outage(failure):
                self.went_down(failure)
            else:
                self._release_all()  # the refusal may last: nobody waits on it
            self.stats.retries += 1
            if self._closing:  # closing: try often until close's own timeout
                await asyncio.sleep(_MIN_DELAY)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, _MAX_DELAY)

    @staticmethod
    async def _try(step: Callable[[Any], Awaitable[None]], arg: Any) -> Exception | None:
        try:
            await step(arg)
        except Exception as exc:
            return exc
        return None

    async def _write_batch(self, batch: list[Op]) -> None:
        await self._flush(batch)
        self.stats.flushes += 1
        self._written(len(batch))

    async def _one_by_one(self, args: tuple[int, bool]) -> None:
        """A batch PostgreSQL refused: each op alone, dropping those refused as invalid
        (and, with ``give_up``, those refused for any reason but an outage)."""
        count, give_up = args
        for _ in range(count):
            op = self._queue[0]
            try:
                await self._flush([op])
            except Exception as exc:
                if _invalid_data(exc):
                    log.warning(
                        "history: PostgreSQL refused %d %s row(s): %s", op.size, op.kind, exc
                    )
                    self._written(1, rejected=True)
                elif give_up and not outage(exc):
                    self._refused(op, exc)
                else:
                    raise
            else:
                self.stats.flushes += 1
                self._written(1)

    def went_down(self, exc: BaseException) -> None:
        """PostgreSQL failed (a write, or a read): one warning per outage."""
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        self.stats.outages += 1
        log.warning(
            "history: PostgreSQL unreachable (%s: %s); buffering writes (up to %d rows) "
            "and retrying",
            type(exc).__name__,
            exc,
            self.max_rows,
        )
        self._release_all()

    def came_back(self) -> None:
        if self.down_since is None:
            return
        log.info(
            "history: PostgreSQL is back after %.1fs; %d buffered row(s) left to write",
            time.monotonic() - self.down_since,
            self.stats.buffered,
        )
        self.down_since = None
        self._full_logged = False
        self._draining = bool(self._queue)
