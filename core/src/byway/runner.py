"""WorkerRunner: consumes a worker's streams and runs its tasks.

One blocking ``XREADGROUP`` covers every agent-type stream of the worker plus its own
control stream, reading at most ``min(fetch_count, free slots)`` entries, so a worker
never holds work it has no slot for. Per batch, one pipelined round trip moves every
new execution to RUNNING (a Lua script per execution: it also answers "already
finished" for a redelivered command and "cancelled" for one cancelled while queued).
Per task, one pipelined round trip ends it: the terminal record, the ``finalAnswer``
and ``appStreamResponse`` events (or the reply to a calling agent) and the ``XACK``.
Entries are acknowledged only after that, so a worker that dies mid-task leaves them
pending for recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from dataclasses import dataclass
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from byway import _scripts, events
from byway.context import AgentContext
from byway.errors import ProtocolError, TaskCancelledError, WorkerError
from byway.keys import Keys
from byway.protocol import (
    AgentState,
    AgentTaskResult,
    AskAgentCommand,
    CancelMode,
    CancelTaskCommand,
    EventType,
    MessageHeader,
    ReloadPluginsCommand,
    ResumeCommand,
    decode_command,
    encode_command,
    encode_event,
    new_id,
    now_ms,
)
from byway.registry import DEFAULT_RECORD_TTL_S, WorkerInfo, WorkerRegistry, new_record
from byway.settings import RedisSettings
from byway.worker import GatewayWorker, normalize_result

__all__ = ["RunnerConfig", "WorkerRunner"]

log = logging.getLogger("byway.worker")
_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """Tuning of one runner; every field has a production-safe default."""

    max_concurrency: int = 50
    fetch_count: int = 10
    consumer_group: str = "agent_engines"
    lease_seconds: float = 15.0
    drain_timeout: float = 30.0
    cancel_grace_seconds: float = 5.0
    block_ms: int = 2_000
    session_stream_maxlen: int = 10_000
    session_ttl_seconds: int = DEFAULT_RECORD_TTL_S

    def __post_init__(self) -> None:
        for name in ("max_concurrency", "fetch_count", "block_ms", "session_stream_maxlen"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise WorkerError(f"{name}: expected a positive integer, got {value!r}")
        for name in ("lease_seconds", "drain_timeout", "cancel_grace_seconds"):
            if getattr(self, name) < 0:
                raise WorkerError(f"{name}: expected a non-negative number")
        if self.lease_seconds < 1:
            raise WorkerError(f"lease_seconds: expected at least 1, got {self.lease_seconds}")
        if not self.consumer_group:
            raise WorkerError("consumer_group: expected a non-empty name")


@dataclass(slots=True)
class _Running:
    """A task this runner is executing."""

    context: AgentContext
    stream: str
    entry_id: str
    agent_type: str
    is_root: bool
    reply_to: str  # caller's agent type when another agent waits for this one
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _EndWrite:
    """What ends one task: the FINISH script, the reply to a caller, the XACK."""

    keys: list[str]
    args: list[Any]
    reply: tuple[str, bytes] | None
    ack: tuple[str, str]
    message_id: str
    done: asyncio.Future[None]

    def queue(self, pipe: Any, group: str) -> None:
        _scripts.FINISH.queue(pipe, self.keys, self.args)
        if self.reply is not None:
            pipe.xadd(self.reply[0], {"data": self.reply[1]})
        pipe.xack(self.ack[0], group, self.ack[1])


class WorkerRunner:
    """Runs one :class:`GatewayWorker`: ``initialize()``, ``start()``, ``stop()``, ``release()``.

    ``async with WorkerRunner(worker) as runner: await runner.start()`` does all four.
    """

    def __init__(
        self,
        worker: GatewayWorker,
        *,
        redis: aioredis.Redis | None = None,
        settings: RedisSettings | None = None,
        config: RunnerConfig | None = None,
        **overrides: Any,
    ) -> None:
        if not isinstance(worker, GatewayWorker):
            raise WorkerError(f"worker: expected a GatewayWorker, got {type(worker).__name__}")
        agent_types = worker.get_agent_types()
        if not agent_types or not all(isinstance(t, str) and t for t in agent_types):
            raise WorkerError(
                f"{type(worker).__name__}.get_agent_types(): expected a non-empty list of names"
            )
        self.worker = worker
        self.agent_types = list(dict.fromkeys(agent_types))
        self.config = config or RunnerConfig(**overrides)
        self.settings = settings or RedisSettings.from_env()
        self._owns_redis = redis is None
        self.redis: aioredis.Redis = redis if redis is not None else self.settings.client()
        self.keys: Keys = self.settings.keys
        self.registry = WorkerRegistry(
            self.redis, self.keys, record_ttl_s=self.config.session_ttl_seconds
        )
        self.info = WorkerInfo(
            worker_id=worker.worker_id,
            agent_types=self.agent_types,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            lease_ms=int(self.config.lease_seconds * 1000),
            max_concurrency=self.config.max_concurrency,
        )
        self._streams = {self.keys.agent_stream(t): t for t in self.agent_types}
        self._own_stream = self.keys.worker_stream(worker.worker_id)
        self._running: dict[str, _Running] = {}
        self._slot_free = asyncio.Event()
        self._stopping = asyncio.Event()
        self._initialized = False
        self._consume_task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.Task[None]] = set()
        self._ending: list[_EndWrite] = []
        self._end_flusher: asyncio.Task[None] | None = None
        self.completed = 0
        self.failed = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> WorkerRunner:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        await self.release()

    async def initialize(self) -> None:
        """Create consumer groups (idempotent), take the worker-id lease, join agent types."""
        if self._initialized:
            return
        group = self.config.consumer_group
        for stream in [*self._streams, self._own_stream]:
            try:
                await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        await self.registry.register_worker(self.info)
        self._initialized = True
        await self.worker.on_startup()
        log.info(
            "worker %s ready: agent types %s, concurrency %d, redis %s",
            self.worker.worker_id,
            ",".join(self.agent_types),
            self.config.max_concurrency,
            self.settings.describe(),
        )

    async def start(self, handle_signals: bool = True) -> None:
        """Consume until :meth:`stop` (or SIGTERM/SIGINT), then drain."""
        await self.initialize()
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="byway-heartbeat")
        self._consume_task = asyncio.create_task(self._consume_loop(), name="byway-consume")
        try:
            await self._stopping.wait()
        finally:
            self._consume_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consume_task
            await self._drain()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping.is_set():
            log.warning("second %s: cancelling running tasks now", sig.name)
            for running in self._running.values():
                if running.task:
                    running.task.cancel()
            return
        log.info("%s received: draining (up to %.0fs)", sig.name, self.config.drain_timeout)
        self._stopping.set()

    async def stop(self) -> None:
        """Stop consuming; running tasks get ``drain_timeout`` seconds to finish."""
        self._stopping.set()

    async def release(self) -> None:
        """Leave the registry, release the lease and close the connection pool."""
        if self._initialized:
            with contextlib.suppress(RedisError):
                await self.registry.unregister_worker(self.info)
            await self.worker.on_shutdown()
            self._initialized = False
        if self._owns_redis:
            await self.redis.aclose()
        log.info(
            "worker %s stopped: %d completed, %d failed",
            self.worker.worker_id,
            self.completed,
            self.failed,
        )

    async def _drain(self) -> None:
        tasks = [r.task for r in self._running.values() if r.task]
        if not tasks:
            return
        log.info("waiting for %d running task(s)", len(tasks))
        _, pending = await asyncio.wait(tasks, timeout=self.config.drain_timeout)
        if pending:
            log.warning(
                "%d task(s) did not finish within %.0fs; left pending for another worker",
                len(pending),
                self.config.drain_timeout,
            )
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)

    async def _heartbeat_loop(self) -> None:
        interval = self.config.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                self.info.running = len(self._running)
                if not await self.registry.renew_lease(self.info):
                    log.error(
                        "worker id %s was taken by another process; stopping",
                        self.worker.worker_id,
                    )
                    self._stopping.set()
                    return
            except RedisError as exc:
                log.warning("heartbeat failed (%s); retrying", exc)

    # -- consuming -------------------------------------------------------------------------

    async def _consume_loop(self) -> None:
        streams = {**dict.fromkeys(self._streams, ">"), self._own_stream: ">"}
        group, consumer = self.config.consumer_group, self.worker.worker_id
        backoff = 0.1
        while not self._stopping.is_set():
            free = self.config.max_concurrency - len(self._running)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                reply: Any = await self.redis.xreadgroup(
                    group,
                    consumer,
                    streams,  # type: ignore[arg-type]
                    count=min(self.config.fetch_count, free),
                    block=self.config.block_ms,
                )
                backoff = 0.1
            except RedisError as exc:
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

    async def _dispatch(self, reply: list[Any]) -> None:
        starts: list[tuple[str, str, AskAgentCommand | ResumeCommand]] = []
        for stream_raw, entries in reply:
            stream = stream_raw.decode()
            for entry_raw, fields in entries:
                entry_id = entry_raw.decode()
                try:
                    command = decode_command(fields.get(b"data", b""))
                except ProtocolError as exc:
                    await self._dead_letter(stream, entry_id, fields, str(exc))
                    continue
                if isinstance(command, (AskAgentCommand, ResumeCommand)):
                    starts.append((stream, entry_id, command))
                elif isinstance(command, CancelTaskCommand):
                    await self._on_cancel(command)
                    await self._ack(stream, entry_id)
                elif isinstance(command, ReloadPluginsCommand):
                    log.info("reload %s requested: no plugins to reload", command.reload_id)
                    await self._ack(stream, entry_id)
        if starts:
            await self._start_batch(starts)

    async def _start_batch(
        self, starts: list[tuple[str, str, AskAgentCommand | ResumeCommand]]
    ) -> None:
        now = now_ms()
        worker_id = self.worker.worker_id
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, entry_id, command in starts:
                h = command.header
                agent_type = self._streams.get(stream) or h.target_agent_type
                record = new_record(
                    execution_id="",
                    message_id=h.message_id,
                    session_id=h.session_id,
                    trace_id=h.trace_id,
                    status=AgentState.QUEUED,
                    target_agent_type=agent_type,
                    source_agent_type=h.source_agent_type,
                    parent_message_id=h.parent_message_id,
                    now=now,
                )
                _scripts.START.queue(
                    pipe,
                    [
                        self.keys.session_registry(h.session_id),
                        self.keys.session_stream(h.session_id),
                    ],
                    [
                        h.message_id,
                        new_id("exec"),
                        worker_id,
                        now,
                        record,
                        0,
                        entry_id,
                        stream,
                    ],
                )
            results = await pipe.execute(raise_on_error=False)
        for (stream, entry_id, command), result in zip(starts, results, strict=True):
            if isinstance(result, Exception):
                log.error("could not start %s: %s", command.header.message_id, result)
                continue  # stays pending: recovered later
            verdict, execution_id = result[0].decode(), result[1].decode()
            agent_type = self._streams.get(stream) or command.header.target_agent_type
            if verdict == "done":
                log.debug("%s already %s: acknowledged", command.header.message_id, result[2])
                await self._ack(stream, entry_id)
                continue
            source = command.header.source_agent_type
            if isinstance(command, ResumeCommand) and verdict == "run":
                # a resumed execution replies to whoever called it in the first place
                source = str(msgspec.json.decode(result[2]).get("source_agent_type") or "")
            if source == "client":  # by-framework clients mark root sends this way
                source = ""
            running = _Running(
                context=AgentContext(
                    self, command, execution_id=execution_id, agent_type=agent_type
                ),
                stream=stream,
                entry_id=entry_id,
                agent_type=agent_type,
                is_root=not source,
                reply_to=source,
            )
            if verdict == "cancelled":
                reason = result[2].decode() if len(result) > 2 else ""
                await self._finish(
                    running,
                    AgentTaskResult(status=AgentState.CANCELLED),
                    {"type": "Cancelled", "message": reason or "cancelled before it started"},
                )
                continue
            self._running[command.header.message_id] = running
            running.task = asyncio.create_task(self._run(running), name=f"byway-task-{entry_id}")

    # -- running a task --------------------------------------------------------------------

    async def _run(self, running: _Running) -> None:
        ctx = running.context
        error: dict[str, str] | None = None
        try:
            raw = await self.worker.process_command(ctx.command, ctx)
            result = normalize_result(raw)
        except (asyncio.CancelledError, TaskCancelledError) as exc:
            if not ctx.cancel_event.is_set() and isinstance(exc, asyncio.CancelledError):
                raise  # the runner itself is shutting down: leave the entry pending
            result = AgentTaskResult(status=AgentState.CANCELLED)
            error = {"type": "Cancelled", "message": ctx.cancel_reason or "task cancelled"}
        except Exception as exc:
            log.warning(
                "task %s (%s) failed: %s: %s",
                ctx.message_id,
                running.agent_type,
                type(exc).__name__,
                exc,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            result = AgentTaskResult(
                status=AgentState.FAILED, content=f"{type(exc).__name__}: {exc}"
            )
            error = {"type": type(exc).__name__, "message": str(exc)}
        try:
            await self._finish(running, result, error)
        finally:
            self._running.pop(ctx.message_id, None)
            self._slot_free.set()

    async def _finish(
        self, running: _Running, result: AgentTaskResult, error: dict[str, str] | None
    ) -> None:
        """End the execution, emit its end events or reply to its caller, and XACK."""
        ctx = running.context
        status = str(result.status).upper() or AgentState.COMPLETED
        if status not in (AgentState.COMPLETED, AgentState.FAILED, AgentState.CANCELLED):
            status = AgentState.COMPLETED
        if status == AgentState.COMPLETED:
            self.completed += 1
        else:
            self.failed += 1
        final = AgentTaskResult(
            status=status,
            content=result.content,
            reply_data=result.reply_data,
            metadata=result.metadata,
            extra_payload=result.extra_payload,
        )
        base: dict[str, Any] = dict(
            trace_id=ctx.trace_id,
            session_id=ctx.session_id,
            source_agent_type=running.agent_type,
            message_id=ctx.message_id,
            parent_message_id=ctx.parent_message_id,
        )
        payloads: list[bytes] = [
            encode_event(
                event_type=EventType.FINAL_ANSWER,
                data=events.final_data(final, ctx.execution_id, error),
                metadata=result.metadata,
                **base,
            )
        ]
        if running.is_root:
            payloads.append(
                encode_event(
                    event_type=EventType.APP_STREAM_RESPONSE,
                    data=events.end_data(status, ctx.execution_id),
                    **base,
                )
            )
        summary: dict[str, Any] = {"status": status}
        if error:
            summary["error"] = error
        reply = (
            (self.keys.agent_stream(running.reply_to), self._reply_command(running, final))
            if running.reply_to
            else None
        )
        write = _EndWrite(
            keys=[
                self.keys.session_registry(ctx.session_id),
                self.keys.session_stream(ctx.session_id),
            ],
            args=[
                ctx.execution_id,
                status,
                now_ms(),
                self.worker.worker_id,
                _json.encode(summary),
                self.config.session_stream_maxlen,
                self.config.session_ttl_seconds,
                *payloads,
            ],
            reply=reply,
            ack=(running.stream, running.entry_id),
            message_id=ctx.message_id,
            done=asyncio.get_running_loop().create_future(),
        )
        self._ending.append(write)
        if self._end_flusher is None or self._end_flusher.done():
            self._end_flusher = asyncio.create_task(self._flush_ends())
        await write.done

    async def _flush_ends(self) -> None:
        """Write the ends of every task that finished meanwhile in one pipelined round trip.

        Under load, many tasks end in the same loop iteration and share one round trip;
        alone, a task waits one loop iteration for company.
        """
        await asyncio.sleep(0)
        while self._ending:
            batch, self._ending = self._ending, []
            for attempt in range(6):
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for write in batch:
                            write.queue(pipe, self.config.consumer_group)
                        results = await pipe.execute(raise_on_error=False)
                    for item in results:
                        if isinstance(item, Exception):
                            log.error("ending a task failed: %s", item)
                    break
                except RedisError as exc:
                    delay = 0.1 * 2**attempt
                    log.warning(
                        "could not end %d task(s) (%s); retrying in %.1fs", len(batch), exc, delay
                    )
                    await asyncio.sleep(delay)
            else:
                log.error(
                    "gave up ending %s: left pending for recovery",
                    ", ".join(w.message_id for w in batch),
                )
            for write in batch:
                if not write.done.done():
                    write.done.set_result(None)

    def _reply_command(self, running: _Running, result: AgentTaskResult) -> bytes:
        """The Resume a called agent sends to its caller (SPEC §5 header rules)."""
        ctx = running.context
        header = ctx.command.header
        return encode_command(
            ResumeCommand(
                header=MessageHeader(
                    message_id=header.parent_message_id,
                    session_id=ctx.session_id,
                    trace_id=ctx.trace_id,
                    source_agent_type=running.agent_type,
                    target_agent_type=running.reply_to,
                    parent_message_id=ctx.message_id,
                    task_group_id=header.task_group_id,
                    user_code=header.user_code,
                    user_name=header.user_name,
                    metadata={**header.metadata, **result.metadata},
                ),
                content=result.content,
                status=result.status,
                reply_data=result.reply_data,
                extra_payload=result.extra_payload,
            )
        )

    async def emit_event(self, ctx: AgentContext, event_type: str, data: dict[str, Any]) -> None:
        """Append one event to the task's session stream."""
        payload = encode_event(
            trace_id=ctx.trace_id,
            session_id=ctx.session_id,
            event_type=event_type,
            source_agent_type=ctx.current_agent_id,
            message_id=ctx.message_id,
            parent_message_id=ctx.parent_message_id,
            data=data,
        )
        await self.redis.xadd(
            self.keys.session_stream(ctx.session_id),
            {"data": payload},
            maxlen=self.config.session_stream_maxlen,
            approximate=True,
        )

    # -- control commands ------------------------------------------------------------------

    async def _on_cancel(self, command: CancelTaskCommand) -> None:
        running = self._running.get(command.target_message_id)
        if running is None or running.task is None:
            log.debug("cancel for %s: not running here", command.target_message_id)
            return
        ctx = running.context
        ctx.cancel_reason = command.reason or "cancelled"
        ctx.cancel_event.set()
        with contextlib.suppress(Exception):
            await self.worker.on_cancel_task(command)
        task = running.task
        if command.cancel_mode == CancelMode.FORCE:
            task.cancel()
            return
        grace = self.config.cancel_grace_seconds

        async def force_after_grace() -> None:
            await asyncio.sleep(grace)
            if not task.done():
                log.info("task %s ignored cancel for %.1fs: cancelling", ctx.message_id, grace)
                task.cancel()

        timer = asyncio.create_task(force_after_grace())
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    # -- acknowledgement and dead letters --------------------------------------------------

    async def _ack(self, stream: str, entry_id: str) -> None:
        await self.redis.xack(stream, self.config.consumer_group, entry_id)

    async def _dead_letter(
        self, stream: str, entry_id: str, fields: dict[bytes, bytes], reason: str
    ) -> None:
        """Move an entry that cannot be decoded aside (with the reason) and acknowledge it."""
        log.error("dead-lettering %s %s: %s", stream, entry_id, reason)
        raw = fields.get(b"data", b"")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(
                self.keys.dead_letters(),
                {
                    "data": _json.encode(
                        {
                            "stream": stream,
                            "entry_id": entry_id,
                            "reason": reason,
                            "worker_id": self.worker.worker_id,
                            "timestamp": now_ms(),
                            "raw": raw.decode("utf-8", "replace"),
                        }
                    )
                },
                maxlen=10_000,
                approximate=True,
            )
            pipe.xack(stream, self.config.consumer_group, entry_id)
            await pipe.execute()
