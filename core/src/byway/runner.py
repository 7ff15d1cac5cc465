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
import functools
import logging
import random
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from byway import _scripts, events, tracing
from byway._log import get_logger
from byway._process import ProcessIdentity
from byway.answers import AnswerNotices
from byway.context import AgentContext
from byway.errors import (
    LimitExceededError,
    ProtocolError,
    TaskCancelledError,
    TaskError,
    WorkerError,
)
from byway.flow import STRATEGIES, TIMEOUT_STATUS, WAIT_ID_KEY, Flow, header_depth
from byway.history import ExecutionLog, HistoryEntry, HistoryStore, RedisHistoryStore
from byway.keys import Keys
from byway.limits import Limits
from byway.plugins import (
    AgentConfig,
    Plugin,
    PluginBuildContext,
    PluginError,
    PluginManager,
    configs_from_snapshot,
    discover_plugins,
    snapshot_body,
    snapshot_version,
)
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
    decode_event,
    encode_command,
    encode_event,
    new_id,
    now_ms,
    utf8_safe,
)
from byway.records import started_record
from byway.recovery import Recovery
from byway.registry import (
    DEFAULT_RECORD_TTL_S,
    ExecutionRecord,
    WorkerInfo,
    WorkerRegistry,
    new_record,
)
from byway.settings import RedisSettings, is_cluster
from byway.signing import Signer
from byway.worker import GatewayWorker, normalize_result

__all__ = ["RunnerConfig", "WorkerRunner"]

log = get_logger("byway.worker")

#: how long a worker with no free slot blocks on its own stream before looking again
_SATURATED_BLOCK_MS = 50
#: reload commands one worker keeps to acknowledge at once (older ones get no ack)
_RELOADS_ANSWERED = 100
#: failures of one loop within a minute that stop the worker (below: it restarts)
_LOOP_FAILURES = 5
_json = msgspec.json.Encoder()
_T = TypeVar("_T")


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
    #: what a new root message does while its session runs one: enqueue, reject, interrupt
    multitask_strategy: str = "enqueue"
    max_call_depth: int = 32
    max_fanout: int = 1_000
    #: how often this worker looks for waits whose deadline passed
    sweep_interval: float = 0.5
    #: a task whose worker died is retried alone; after this many such runs that died
    #: too it goes to the dead-letter stream (ends FAILED)
    max_deliveries: int = 5
    #: longest a plugin hook may take before it is skipped (the task goes on)
    plugin_hook_timeout_seconds: float = 5.0
    #: turns of the session's history handed to a root task (extra_payload.history); 0: none
    history_limit: int = 20
    #: longest a history store other than Redis may take to read a root task's history or
    #: append its turns; past it the task goes on (no history; its end is written)
    history_timeout_seconds: float = 3.0
    #: size limits of commands read and events written (``BYWAY_MAX_*``)
    limits: Limits = field(default_factory=Limits.from_env)

    def __post_init__(self) -> None:
        if self.multitask_strategy not in STRATEGIES:
            raise WorkerError(
                f"multitask_strategy: expected one of {', '.join(STRATEGIES)}, "
                f"got {self.multitask_strategy!r}"
            )
        for name in (
            "max_concurrency",
            "fetch_count",
            "block_ms",
            "session_stream_maxlen",
            "max_call_depth",
            "max_fanout",
        ):
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
        if self.plugin_hook_timeout_seconds <= 0:
            raise WorkerError("plugin_hook_timeout_seconds: expected a positive number")
        if self.history_timeout_seconds <= 0:
            raise WorkerError("history_timeout_seconds: expected a positive number")
        if not isinstance(self.history_limit, int) or self.history_limit < 0:
            raise WorkerError(
                f"history_limit: expected an integer >= 0, got {self.history_limit!r}"
            )


def _is_root_ask(command: Any) -> bool:
    h = command.header
    return isinstance(command, AskAgentCommand) and (
        h.source_agent_type in ("", "client") and not h.parent_message_id
    )


#: an entry to start: stream, entry id, command, the command's JSON as read
_Start = tuple[str, str, "AskAgentCommand | ResumeCommand", bytes]


@dataclass(slots=True)
class _Running:
    """A task this runner is executing."""

    context: AgentContext
    stream: str
    entry_id: str
    agent_type: str
    task: asyncio.Task[None] | None = None
    #: the handler returned (or raised): from here on only bookkeeping runs, and a cancel
    #: must not interrupt it
    handler_done: bool = False
    #: its previous run died with its worker: it runs alone
    suspect: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.context.session_id, self.context.message_id)


@dataclass(slots=True)
class _EndWrite:
    """What ends one task: FINISH, the reply or group result for its caller, the XACK."""

    keys: list[str]
    args: list[Any]
    ack: tuple[str, str]
    context: AgentContext
    done: asyncio.Future[None]
    reply: bytes | None = None
    group_result: dict[str, Any] | None = None
    #: where its FINISH and GROUP_RESULT calls sit in the pipeline (for outbox mode)
    positions: tuple[int, int] = (-1, -1)
    #: the state it ends in: as the handler's result says, until FINISH says otherwise
    status: str = AgentState.COMPLETED

    def written(self, results: list[Any]) -> None:
        """Take the state FINISH wrote (a root cancelled meanwhile ends CANCELLED)."""
        finished = results[self.positions[0]]
        if isinstance(finished, list) and len(finished) > 3 and finished[0] == 1:
            self.status = _text(finished[3]) or self.status

    def queue(self, pipe: Any, flow: Flow, group: str) -> None:
        finish_at, group_at = len(pipe), -1
        _scripts.FINISH.queue(pipe, self.keys, self.args)
        ctx = self.context
        if self.group_result is not None:
            group_at = len(pipe)
            flow.queue_group_result(pipe, ctx.task_group_id, ctx.message_id, self.group_result)
        elif self.reply is not None:
            flow.queue_reply(pipe, ctx.reply_to, self.reply)
        if not self.ack_after_forward(flow):
            pipe.xack(self.ack[0], group, self.ack[1])
        self.positions = (finish_at, group_at)

    def ack_after_forward(self, flow: Flow) -> bool:
        """Outbox mode: a group child is acknowledged only once its group's Resume is sent
        (if its worker dies before, the entry comes back and sends it; see _start_batch)."""
        return flow.outbox and self.group_result is not None

    def forwards(self, results: list[Any]) -> list[tuple[str, bytes]]:
        """What its scripts left to forward (outbox mode): the session's next message,
        the group's Resume to its caller."""
        out: list[tuple[str, bytes]] = []
        finish_at, group_at = self.positions
        finished = results[finish_at]
        if isinstance(finished, list) and len(finished) > 2:
            handed = Flow.handed_item(finished[2])
            if handed:
                out.append(handed)
        if group_at >= 0:
            resume = Flow.group_resume(results[group_at])
            if resume:
                out.append(resume)
        return out


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
        plugins: Iterable[Plugin] | None = None,
        signer: Signer | None = None,
        **overrides: Any,
    ) -> None:
        """``plugins=None`` discovers them (entry points, ``BYWAY_DISABLED_PLUGINS``);
        pass a list to choose, or ``[]`` for none. ``signer=None``: commands are signed
        and verified as ``BYWAY_SIGNING_KEYS`` says (unset: neither)."""
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
        me = ProcessIdentity.current(socket.gethostname())
        self.info = WorkerInfo(
            worker_id=worker.worker_id,
            agent_types=self.agent_types,
            hostname=me.hostname,
            pid=me.pid,
            boot_id=me.boot_id,
            pid_ns=me.pid_ns,
            proc_start=me.start,
            lease_ms=int(self.config.lease_seconds * 1000),
            max_concurrency=self.config.max_concurrency,
        )
        self.flow = Flow(
            self.redis,
            self.keys,
            record_ttl_s=self.config.session_ttl_seconds,
            session_stream_maxlen=self.config.session_stream_maxlen,
            max_command_bytes=self.config.limits.max_command_bytes,
            signer=signer if signer is not None else Signer.from_env(),
        )
        self._streams = {self.keys.agent_stream(t): t for t in self.agent_types}
        #: tells a session about a user's answer no task took (late, duplicate, unreadable)
        self.answers = AnswerNotices(
            self.registry,
            self.keys,
            maxlen=self.config.session_stream_maxlen,
            ttl_s=self.config.session_ttl_seconds,
        )
        self.recovery = Recovery(self)
        self._own_stream = self.keys.worker_stream(worker.worker_id)
        #: what runs here, by (session id, message id): a message id is unique only
        #: within its session
        self._running: dict[tuple[str, str], _Running] = {}
        self._stopping = asyncio.Event()
        self._initialized = False
        self._consume_task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.Task[None]] = set()
        self._ending: list[_EndWrite] = []
        self._backlog: list[_Start] = []
        self._group_failures = 0  # re-creating lost consumer groups failed this often in a row
        #: tasks whose last run died with its worker, each to run alone
        self._quarantine: list[_Start] = []
        self._suspect_running = False
        self._flushing = False
        self._readers: _StreamReaders | None = None
        self._plugin_source = plugins
        self.plugins = PluginManager(hook_timeout=self.config.plugin_hook_timeout_seconds)
        #: where conversation history goes (Redis unless a plugin sets another store)
        self.history: HistoryStore = RedisHistoryStore(
            self.redis, self.keys, ttl_seconds=self.config.session_ttl_seconds
        )
        #: the tracer provider a plugin installed (OpenTelemetry keeps the first)
        self._tracer_provider: Any = None
        #: the history store's execution log, if it keeps one (None: no work at all)
        self.execution_log: ExecutionLog | None = None
        #: a history call timed out and was logged (at WARNING once, until one succeeds)
        self._history_slow = False
        #: agent configs the plugins registered, and their snapshot version
        self.agent_configs: dict[str, AgentConfig] = {}
        self.config_version = ""
        self._snapshots: dict[str, dict[str, AgentConfig]] = {}
        self._reload_lock = asyncio.Lock()
        self._rejoin_lock = asyncio.Lock()
        #: reload commands not yet answered, and the task answering them (one at a time)
        self._reloads_waiting: list[ReloadPluginsCommand] = []
        self._reload_task: asyncio.Task[None] | None = None
        #: tasks this runner ended, by how they ended (the stop summary)
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        #: monotonic time Redis last answered a read or a heartbeat (readiness)
        self.redis_ok_at = 0.0
        #: loops that failed and wait to start again, and why (readiness is false meanwhile)
        self._loop_trouble: dict[str, str] = {}
        #: why the worker stopped on its own (a loop kept failing); '' otherwise
        self.fatal = ""

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
        await self.recovery.ensure_groups()
        await self._load_plugins()
        await self.registry.register_worker(self.info)
        self.redis_ok_at = time.monotonic()
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent_type, strategy in self._strategies().items():
                pipe.set(self.keys.agent_type_strategy(agent_type), strategy)
            await pipe.execute()
        self._initialized = True
        await self.worker.on_startup()
        await self.plugins.fire("on_worker_startup", self.info)
        log.info(
            "worker %s ready: agent types %s, concurrency %d, redis %s",
            self.worker.worker_id,
            ",".join(self.agent_types),
            self.config.max_concurrency,
            self.settings.describe(),
        )

    # -- plugins ---------------------------------------------------------------------------

    def _build_context(self) -> PluginBuildContext:
        return PluginBuildContext(
            worker_id=self.worker.worker_id,
            agent_types=list(self.agent_types),
            redis=self.redis,
            keys=self.keys,
        )

    def _pool_key(self) -> str:
        """Snapshot pointer of this worker's pool (its set of agent types)."""
        return self.keys.agent_configs_snapshot("current:" + ",".join(sorted(self.agent_types)))

    async def _load_plugins(self) -> None:
        """Discover and set up plugins; install what they provide; publish the configs."""
        source = self._plugin_source
        plugins = discover_plugins() if source is None else list(source)
        self.plugins.set_plugins(plugins)
        ctx = self._build_context()
        failure: PluginError | None = None
        try:
            await self.plugins.build(ctx)
        except PluginError as exc:
            failure = exc
        self._use_tracer_provider(ctx.tracer_provider)
        if ctx.history_store is not None:
            self._use_history(ctx.history_store)
        if failure is None:
            await self._publish_configs(ctx.agent_configs)
            return
        # the configs do not build: run the pool's last good ones (every plugin keeps its
        # hooks, and a reload tries the failed one again), or do not start at all
        last = await self._last_good_configs()
        if last is None:
            raise failure
        log.error("%s; running the last good agent configs (%s)", failure, last[0])
        self.config_version, self.agent_configs = last
        self._snapshots[last[0]] = last[1]

    def _use_tracer_provider(self, provider: Any) -> None:
        """Install a plugin's tracer provider as the process's (OpenTelemetry takes the
        first one only: a reload that brings another one is logged and ignored)."""
        if provider is None or provider is self._tracer_provider:
            return
        if self._tracer_provider is not None:
            log.warning("a tracer provider is installed already; the reload's is ignored")
            return
        from opentelemetry import trace

        trace.set_tracer_provider(provider)
        self._tracer_provider = provider

    def _use_history(self, store: HistoryStore) -> None:
        """Install a plugin's history store, and its execution log if it keeps one."""
        self.history = store
        self.execution_log = store if isinstance(store, ExecutionLog) else None

    async def _last_good_configs(self) -> tuple[str, dict[str, AgentConfig]] | None:
        version: Any = await self.redis.get(self._pool_key())
        if not version:
            return None
        raw: Any = await self.redis.get(self.keys.agent_configs_snapshot(version.decode()))
        return (version.decode(), configs_from_snapshot(raw)) if raw else None

    async def _publish_configs(self, configs: dict[str, AgentConfig]) -> None:
        """Store the configs' snapshot (JSON, by content version) and point the pool at it."""
        self.agent_configs = configs
        self.config_version = snapshot_version(configs)
        if not self.config_version:
            return
        self._snapshots[self.config_version] = configs
        ttl = self.config.session_ttl_seconds
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(
                self.keys.agent_configs_snapshot(self.config_version),
                snapshot_body(configs, self.worker.worker_id),
                ex=ttl,
            )
            pipe.set(self._pool_key(), self.config_version)
            await pipe.execute()

    async def configs_of(self, version: str) -> dict[str, AgentConfig]:
        """The agent configs of snapshot ``version`` (what an execution started with)."""
        if not version or version == self.config_version:
            return self.agent_configs
        if version not in self._snapshots:
            raw: Any = await self.redis.get(self.keys.agent_configs_snapshot(version))
            if raw is None:
                log.warning("agent-config snapshot %s is gone; using the current one", version)
                return self.agent_configs
            self._snapshots[version] = configs_from_snapshot(raw)
        return self._snapshots[version]

    def _start_reload(self, command: ReloadPluginsCommand) -> None:
        """Reload beside the consume loop (plugins may take their time). Reloads coalesce:
        whatever is asked while one runs is answered by a single next one, so a flood of
        reload commands costs at most two reloads."""
        waiting = self._reloads_waiting
        if len(waiting) >= _RELOADS_ANSWERED:
            dropped = waiting.pop(0)
            log.warning("reload %s: too many reloads waiting; it gets no ack", dropped.reload_id)
        waiting.append(command)
        if self._reload_task is None or self._reload_task.done():
            task = asyncio.create_task(self._reload_waiting(), name="byway-reload")
            self._reload_task = task
            self._timers.add(task)
            task.add_done_callback(self._timers.discard)

    async def _reload_waiting(self) -> None:
        while self._reloads_waiting:
            batch, self._reloads_waiting = self._reloads_waiting, []
            await self._reload(batch)

    async def _reload(self, commands: list[ReloadPluginsCommand]) -> None:
        """Hot reload: every plugin re-reads its configuration; ack on each reload's stream."""
        ids = ", ".join(c.reload_id for c in commands[:3]) + (
            f" (+{len(commands) - 3})" if len(commands) > 3 else ""
        )
        async with self._reload_lock:
            before = self.config_version
            status, error = "ok", ""
            ctx = self._build_context()
            try:
                await self.plugins.build(ctx, reload=True)
                self._use_tracer_provider(ctx.tracer_provider)
                if ctx.history_store is not None:
                    self._use_history(ctx.history_store)
                await self._publish_configs(ctx.agent_configs)
            except Exception as exc:  # the old configs stay
                status, error = "error", f"{type(exc).__name__}: {exc}"
                log.error("reload %s failed: %s", ids, error)
            else:
                log.info("reload %s: agent configs %s -> %s", ids, before or "-",
                         self.config_version or "-")  # fmt: skip
            for command in commands:
                try:
                    await self._write_reload_ack(command, status, before, error)
                except RedisError as exc:
                    log.warning("reload %s: could not write the ack (%s)", command.reload_id, exc)

    async def _write_reload_ack(
        self, command: ReloadPluginsCommand, status: str, before: str, error: str
    ) -> None:
        ack = self.keys.plugin_reload_ack(command.reload_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(
                ack,
                {
                    "data": _json.encode(
                        {
                            "worker_id": self.worker.worker_id,
                            "status": status,
                            "version_before": before,
                            "version_after": self.config_version,
                            "error": error,
                            "timestamp": now_ms(),
                        }
                    )
                },
            )
            pipe.expire(ack, 3600)
            await pipe.execute()

    async def start(self, handle_signals: bool = True) -> None:
        """Consume until :meth:`stop` (or SIGTERM/SIGINT), then drain."""
        await self.initialize()
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        self._backlog.extend(await self._decode(await self.recovery.own_pending()))
        heartbeat = asyncio.create_task(
            self._supervised("heartbeat", self._heartbeat_loop), name="byway-heartbeat"
        )
        sweeper = asyncio.create_task(
            self._supervised("deadline", self._deadline_loop), name="byway-deadlines"
        )
        self._consume_task = asyncio.create_task(
            self._supervised("consume", self._consume_loop), name="byway-consume"
        )
        try:
            await self._stopping.wait()
        finally:
            self._consume_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consume_task
            await self._drain()
            for loop_task in (heartbeat, sweeper):
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop_task
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run one of the worker's loops for as long as the worker runs. A loop that fails
        (a bug, or an error nothing else caught) is logged with its traceback, turns
        readiness false, and starts again after a backoff; one that fails
        ``_LOOP_FAILURES`` times within a minute stops the worker, which then exits
        non-zero (:attr:`fatal` says why)."""
        backoff, failures = 0.1, list[float]()
        while not self._stopping.is_set():
            try:
                await loop()
                if self._stopping.is_set():
                    return
                raise WorkerError(f"the {name} loop ended on its own")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                now = time.monotonic()
                failures = [t for t in failures if now - t < 60] + [now]
                why = f"the {name} loop failed: {type(exc).__name__}: {_cut(str(exc), 200)}"
                self._loop_trouble[name] = why
                if len(failures) >= _LOOP_FAILURES:
                    log.critical("%s (%d times in a minute); stopping", why, len(failures),
                                 exc_info=exc)  # fmt: skip
                    self.fatal = why
                    self._stopping.set()
                    return
                log.error("%s; restarting it in %.1fs", why, backoff, exc_info=exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._loop_trouble.pop(name, None)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping.is_set():
            log.warning("second %s: cancelling running tasks now", sig.name)
            for running in self._running.values():
                if running.task:
                    running.task.cancel()
            return
        log.info("%s received: draining (up to %.0fs)", sig.name, self.config.drain_timeout)
        self._stopping.set()

    def readiness(self) -> tuple[bool, str]:
        """Whether this worker consumes and Redis answered recently, and if not, why."""
        if not self._initialized:
            return False, "starting"
        if self.fatal:
            return False, self.fatal
        if self._stopping.is_set():
            return False, "stopping"
        if self._loop_trouble:
            return False, "; ".join(self._loop_trouble.values())
        limit = max(5.0, self.config.block_ms / 1000 * 2.5)
        silent = time.monotonic() - self.redis_ok_at
        if silent > limit:
            return False, f"redis has not answered for {silent:.0f}s"
        return True, "ready"

    async def stop(self) -> None:
        """Stop consuming; running tasks get ``drain_timeout`` seconds to finish."""
        self._stopping.set()

    async def release(self) -> None:
        """Leave the registry, release the lease and close the connection pool."""
        if self._initialized:
            await self.plugins.fire("on_worker_shutdown", self.info)
            self.plugins.log_summary()
            with contextlib.suppress(RedisError):
                await self.registry.unregister_worker(self.info)
            await self.worker.on_shutdown()
            self._initialized = False
        if self._owns_redis:
            await self.redis.aclose()
        log.info(
            "worker %s stopped: %d completed, %d failed, %d cancelled",
            self.worker.worker_id,
            self.completed,
            self.failed,
            self.cancelled,
        )

    async def _drain(self) -> None:
        tasks = [r.task for r in self._running.values() if r.task]
        unfinished: list[tuple[str, str]] = [(s, e) for s, e, *_ in self._backlog]
        unfinished += [(s, e) for s, e, *_ in self._quarantine]
        self._backlog.clear()
        self._quarantine.clear()
        if tasks:
            log.info("waiting for %d running task(s)", len(tasks))
            _, pending = await asyncio.wait(tasks, timeout=self.config.drain_timeout)
            if pending:
                log.warning(
                    "%d task(s) did not finish within %.0fs; handing them back",
                    len(pending),
                    self.config.drain_timeout,
                )
                unfinished += [
                    (r.stream, r.entry_id) for r in self._running.values() if r.task in pending
                ]
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=1.0)
        if unfinished:
            with contextlib.suppress(RedisError):
                await self.recovery.hand_back(unfinished)

    async def _heartbeat_loop(self) -> None:
        interval = self.config.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                self.info.running = len(self._running)
                await self._renew_session_locks()
                await self.recovery.refresh()
                lease = await self.registry.renew_lease(self.info)
                self.redis_ok_at = time.monotonic()
                if not await self._rejoin(lease):
                    return
                claimed = await self.recovery.reclaim()
                if claimed:
                    self._backlog.extend(await self._decode(claimed))
            except RedisError as exc:
                log.warning("heartbeat failed (%s); retrying", exc)
            except Exception:  # a bug must not stop the heartbeat for good
                log.exception("heartbeat failed; retrying")

    def _strategies(self) -> dict[str, str]:
        return dict.fromkeys(self.agent_types, self.config.multitask_strategy)

    async def _rejoin(self, lease: int | None = None, *, groups: bool = False) -> bool:
        """Write again what Redis lost of this worker: its lease, its membership of its
        agent types, their strategies and (``groups``: a read answered NOGROUP, or
        anything else was lost) its consumer groups. Redis loses them on a restart without
        persistence, a failover to an empty replica or a flush; without them the worker
        reads nothing and no client finds it. What was re-created is logged once at
        WARNING (the next look finds it in place). ``lease``: the heartbeat's renewal
        already made. False when another process took the worker id (we stop)."""
        async with self._rejoin_lock:  # the heartbeat and a reader may find it at once
            return await self._rejoin_locked(lease, groups)

    async def _rejoin_locked(self, lease: int | None, groups: bool) -> bool:
        if lease is None:
            lease = await self.registry.renew_lease(self.info)
        if not lease:
            log.error("worker id %s was taken by another process; stopping",
                      self.worker.worker_id)  # fmt: skip
            self._stopping.set()
            return False
        lost = ["its lease"] if lease == 2 else []
        lost += await self.registry.rejoin(self.info, self._strategies())
        if groups or lost:
            created = await self.recovery.ensure_groups()
            if created:
                lost.append(f"{created} consumer group(s)")
        if lost:
            log.warning(
                "worker %s: Redis had lost %s (restarted without persistence, failed over "
                "or flushed?); re-created",
                self.worker.worker_id,
                ", ".join(lost),
            )
        return True

    async def _renew_session_locks(self) -> None:
        """Keep the sessions of running root tasks: a dead worker's lock lapses with it."""
        roots = [r.context for r in self._running.values() if r.context.is_root]
        if not roots:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for ctx in roots:
                _scripts.RENEW_LOCK.queue(
                    pipe,
                    [self.keys.session_lock(ctx.session_id)],
                    [ctx.message_id, self.info.lease_ms],
                )
            await _scripts.execute(self.redis, pipe)

    async def _deadline_loop(self) -> None:
        """Resume waits whose deadline passed (any worker may; each wait goes to one), and
        hand sessions whose running root's worker died on to their queued messages."""
        sweeps = 0
        while True:
            await asyncio.sleep(self.config.sweep_interval)
            sweeps += 1
            try:
                due: Any = await _scripts.CLAIM_DEADLINES.run(
                    self.redis, [self.keys.deadlines()], [now_ms(), 100, 30_000]
                )
                for raw in due:
                    try:
                        await self._expire_wait(msgspec.json.decode(raw))
                    except (RedisError, KeyError, msgspec.DecodeError) as exc:
                        log.warning("could not expire a wait (%s); it is due again in 30s", exc)
                        continue
                    await self.redis.zrem(self.keys.deadlines(), raw)
                if sweeps % 10 == 0:
                    await self._kick_orphaned_sessions()
                if sweeps % 20 == 0:
                    trimmed = await self.recovery.trim()
                    if trimmed:
                        log.debug("trimmed %d acknowledged entries", trimmed)
            except RedisError as exc:
                log.warning("deadline sweep failed (%s); retrying", exc)
            except Exception:  # a bug must not stop the sweeps for good
                log.exception("deadline sweep failed; retrying")

    async def _expire_wait(self, wait: dict[str, Any]) -> None:
        session = wait["session_id"]
        current: Any = await self.redis.hget(
            self.keys.session_registry(session), f"wait:{wait['execution_id']}"
        )
        if not current or msgspec.json.decode(current).get("wait_id") != wait["wait_id"]:
            return  # the wait ended before its deadline
        command = ResumeCommand(
            header=MessageHeader(
                message_id=wait["message_id"],
                session_id=session,
                trace_id=wait.get("trace_id") or new_id("trace"),
                target_agent_type=wait["agent_type"],
                metadata={WAIT_ID_KEY: wait["wait_id"]},
            ),
            status=TIMEOUT_STATUS,
            reply_data={"error": "timeout", "waiting_for": wait.get("children", [])},
        )
        stream = self.keys.agent_stream(wait["agent_type"])
        await self.redis.xadd(stream, {"data": self.flow.seal(stream, encode_command(command))})
        for child in wait.get("children", []):
            await self.flow.cancel_tree(
                session,
                child,
                reason="the caller stopped waiting (timeout)",
                requested_by="deadline",
                notify_caller=False,
            )

    async def _kick_orphaned_sessions(self) -> None:
        k = self.keys
        sessions: Any = await self.redis.srandmember(k.queued_sessions(), 100)
        for raw in sessions or []:
            session = raw.decode()
            result: Any = await _scripts.KICK_SESSION.run(
                self.redis,
                [k.session_registry(session), k.session_lock(session), k.session_queue(session)],
                [self.flow.lock_grace_ms, "1" if self.flow.outbox else "0"],
            )
            verdict = result[0].decode()
            if verdict == "empty":
                await self.redis.srem(k.queued_sessions(), session)
            elif verdict != "busy":
                handed = Flow.handed_item(result[1])
                if handed:
                    await self.flow.forward([handed])
                log.info("session %s had no running task: handed on to %s", session, verdict)

    # -- consuming -------------------------------------------------------------------------

    async def _consume_loop(self) -> None:
        every = {**dict.fromkeys(self._streams, ">"), self._own_stream: ">"}
        own = {self._own_stream: ">"}
        group, consumer = self.config.consumer_group, self.worker.worker_id
        backoff = 0.1
        if is_cluster(self.redis) and len(every) > 1:
            # one XREADGROUP cannot span slots: a reader per stream feeds this loop
            self._readers = _StreamReaders(self, list(every))
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
        while not self._stopping.is_set():
            if self._quarantine and not self._running:
                # in random order: suspects moved from a dead worker must not always line
                # up the same way, or the first would take every blow
                pick = self._quarantine.pop(random.randrange(len(self._quarantine)))
                await self._start_batch([pick], alone=True)
                continue
            free = self._free_slots()
            if free > 0 and self._backlog:
                batch, self._backlog = self._backlog[:free], self._backlog[free:]
                await self._start_batch(batch)
                continue
            if free > 0:
                streams, count, block = (
                    every,
                    min(self.config.fetch_count, free),
                    self.config.block_ms,
                )
            else:
                # every slot is busy: still read our own stream, where cancels arrive, and
                # look at the slots again soon
                streams, count, block = own, self.config.fetch_count, _SATURATED_BLOCK_MS
            try:
                if self._readers is not None:
                    reply = await self._readers.next(block)
                else:
                    reply = await self.redis.xreadgroup(
                        group,
                        consumer,
                        streams,  # type: ignore[arg-type]
                        count=count,
                        block=block,
                    )
                self.redis_ok_at = time.monotonic()
                backoff = 0.1
            except RedisError as exc:
                if _lost_group(exc):
                    await self._after_lost_group()
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

    async def _after_lost_group(self) -> None:
        """A read found a consumer group gone: re-create what Redis lost, then read again
        at once. A pause of 0.1 s keeps a group that cannot stay from spinning the loop;
        one that cannot be re-created (NOPERM, a writer deleting it) backs off to 5 s."""
        self.redis_ok_at = time.monotonic()  # Redis answered
        try:
            await self._rejoin(groups=True)
        except RedisError as exc:
            self._group_failures += 1
            if self._group_failures == 1:
                log.warning("could not re-create the consumer groups (%s); retrying", exc)
            await asyncio.sleep(min(0.1 * 2**self._group_failures, 5.0))
            return
        self._group_failures = 0
        await asyncio.sleep(0.1)

    async def _dispatch(self, reply: list[Any]) -> None:
        starts = await self._decode(reply)
        free = self._free_slots()
        if len(starts) > free:  # tasks sent straight to this busy worker wait their turn
            self._backlog.extend(starts[free:])
            starts = starts[:free]
        if starts:
            await self._start_batch(starts)

    async def _decode(self, reply: list[Any]) -> list[_Start]:
        """Handle control commands and bad entries; return the tasks to start.

        No entry can fail the others: one that does not decode is dead-lettered and
        acknowledged at once, and one whose handling meets a Redis error stays pending
        (recovered later) while the rest of the batch goes on."""
        starts: list[_Start] = []
        signer = self.flow.signer  # signed commands: refuse what does not verify, first
        refused = (
            await signer.screen(self.redis, self.keys, reply, self.config.limits.max_command_bytes)
            if signer
            else {}
        )
        for stream_raw, entries in reply:
            stream = _text(stream_raw)
            for entry_raw, fields in entries:
                entry_id = _text(entry_raw)
                try:
                    if (stream, entry_id) in refused:
                        reason = refused[stream, entry_id]
                        await self._dead_letter(stream, entry_id, fields, reason)
                        continue
                    start = await self._take(stream, entry_id, fields)
                except RedisError as exc:
                    log.warning("entry %s of %s stays pending (%s)", entry_id, stream, exc)
                    continue
                if start is not None:
                    starts.append(start)
        return starts

    async def _take(self, stream: str, entry_id: str, fields: Any) -> _Start | None:
        """Decode one entry: a task to start, or None once it was handled here."""
        data = fields.get(b"data", b"") if isinstance(fields, dict) else b""
        limits = self.config.limits
        try:
            command = decode_command(
                data,
                max_bytes=limits.max_command_bytes,
                max_depth=limits.max_depth,
                forbid_braces=self.keys.schema == "v2",
            )
        except ProtocolError as exc:
            await self._dead_letter(stream, entry_id, fields, str(exc))
            agent_type = self._streams.get(stream, "")
            await self.answers.unreadable(data, limits.max_command_bytes, str(exc), agent_type)
            return None
        if isinstance(command, ResumeCommand) and WAIT_ID_KEY in command.header.metadata:
            command = _as_timeout(command)  # only the deadline's verdict, never a payload
        if isinstance(command, (AskAgentCommand, ResumeCommand)):
            return (stream, entry_id, command, data)
        if isinstance(command, CancelTaskCommand):
            await self._on_cancel(command, tree=stream in self._streams)
        elif isinstance(command, ReloadPluginsCommand):
            self._start_reload(command)
        await self._ack(stream, entry_id)
        return None

    async def _complete_groups(self, starts: list[_Start]) -> list[_Start]:
        """Drop (acknowledge) a task group's Resume while its group has not completed: only
        the last member's report sends one, so any other is forged or stray."""
        groups = [
            (i, s[2].header.task_group_id)
            for i, s in enumerate(starts)
            if isinstance(s[2], ResumeCommand)
            and s[2].header.task_group_id
            and not s[2].header.parent_message_id
        ]
        if not groups:
            return starts
        async with self.redis.pipeline(transaction=False) as pipe:
            for _, group_id in groups:
                pipe.hmget(self.keys.task_group(group_id), "total", "completed")
            counts = await pipe.execute()
        early: set[int] = set()
        for (i, group_id), (total, completed) in zip(groups, counts, strict=True):
            if not total or int(completed or 0) < int(total):
                early.add(i)
                stream, entry_id, command, _ = starts[i]
                log.warning("resume of %s for group %s before the group completed: dropped",
                            command.header.message_id, group_id)  # fmt: skip
                await self._ack(stream, entry_id)
        return [s for i, s in enumerate(starts) if i not in early]

    async def _start_batch(self, starts: list[_Start], *, alone: bool = False) -> None:
        starts = await self._complete_groups(starts)
        if not starts:
            return
        now = now_ms()
        worker_id = self.worker.worker_id
        lease_ms = self.info.lease_ms
        k = self.keys
        outbox = self.flow.outbox
        # the session's history comes with the start (Redis store: no extra command)
        history_limit = (
            self.config.history_limit if isinstance(self.history, RedisHistoryStore) else 0
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, entry_id, command, raw in starts:
                h = command.header
                record = new_record(
                    execution_id="",
                    message_id=h.message_id,
                    session_id=h.session_id,
                    trace_id=h.trace_id,
                    status=AgentState.QUEUED,
                    target_agent_type=self._streams.get(stream) or h.target_agent_type,
                    source_agent_type=h.source_agent_type,
                    parent_message_id=h.parent_message_id,
                    task_group_id=h.task_group_id,
                    user_code=h.user_code,
                    depth=header_depth(h.metadata),
                    now=now,
                )
                is_resume = isinstance(command, ResumeCommand)
                _scripts.START.queue(
                    pipe,
                    [
                        k.session_registry(h.session_id),
                        k.session_lock(h.session_id),
                        k.session_queue(h.session_id),
                        # outbox mode: we add a deferred session to the set ourselves
                        k.session_registry(h.session_id) if outbox else k.queued_sessions(),
                        k.session_history(h.session_id),
                    ],
                    [
                        h.message_id,
                        new_id("exec"),
                        worker_id,
                        now,
                        record,
                        lease_ms,
                        entry_id,
                        stream,
                        "resume" if is_resume else "ask",
                        h.parent_message_id if is_resume else "",
                        str(h.metadata.get(WAIT_ID_KEY, "")) if is_resume else "",
                        h.task_group_id if is_resume else "",
                        raw,
                        h.session_id,
                        self.config.session_ttl_seconds,
                        self.flow.lock_grace_ms,
                        self.config.max_deliveries,
                        "1" if alone else "0",
                        "1" if outbox else "0",
                        self.config_version,
                        history_limit,
                    ],
                )
            results = await _scripts.execute(self.redis, pipe)
        started: list[ExecutionRecord] = []  # of the executions that run (execution log)
        for (stream, entry_id, command, raw), result in zip(starts, results, strict=True):
            if isinstance(result, Exception):
                log.error("could not start %s: %s", command.header.message_id, result)
                continue  # stays pending: recovered later
            verdict, execution_id = result[0].decode(), result[1].decode()
            if verdict == "suspect":
                # its last run died with its worker: it runs alone, so that if it is what
                # kills workers it takes no other task with it
                log.warning(
                    "%s was interrupted before: it will run alone", command.header.message_id
                )
                self._quarantine.append((stream, entry_id, command, raw))
                continue
            if verdict in ("done", "stale", "deferred"):
                log.debug(
                    "%s is %s (%s): acknowledged",
                    command.header.message_id,
                    verdict,
                    result[2].decode(),
                )
                if isinstance(command, ResumeCommand):
                    agent_type = self._streams.get(stream) or command.header.target_agent_type
                    await self.answers.not_taken(
                        command.header, entry_id, verdict, result[2].decode(), agent_type
                    )
                if outbox:  # what the script left for us: a hand-on, a queued session
                    handed = Flow.handed_item(result[3]) if verdict == "done" else None
                    sends = [handed] if handed else []
                    group_id = command.header.task_group_id
                    again = None
                    if verdict == "done" and group_id and isinstance(command, AskAgentCommand):
                        again = await self._group_report_again(command, result[2].decode())
                    await self.flow.forward(
                        sends + ([again] if again else []),
                        [command.header.session_id] if verdict == "deferred" else None,
                        [group_id] if again else None,
                    )
                await self._ack(stream, entry_id)
                continue
            agent_type = self._streams.get(stream) or command.header.target_agent_type
            origin: ExecutionRecord | None = None
            state: dict[str, Any] | None = None
            if verdict in ("run", "poison"):
                origin = started_record(result[2], command.header)
                if verdict == "run" and self.execution_log is not None:
                    started.append(origin)
            if verdict == "run" and result[3]:
                state = msgspec.json.decode(result[3])
            running = _Running(
                context=AgentContext(
                    self,
                    command,
                    execution_id=execution_id,
                    agent_type=agent_type,
                    record=origin,
                    state=state,
                ),
                stream=stream,
                entry_id=entry_id,
                agent_type=agent_type,
            )
            if verdict == "cancelled":
                reason = result[2].decode()
                await self._finish(
                    running,
                    AgentTaskResult(status=AgentState.CANCELLED),
                    {"type": "Cancelled", "message": reason or "cancelled before it started"},
                )
                continue
            if verdict == "poison":
                await self._give_up(running, raw, int(result[3]))
                continue
            if history_limit and verdict == "run" and _is_root_ask(command):
                assert isinstance(command, AskAgentCommand)
                try:
                    command.extra_payload["history"] = RedisHistoryStore.decode_builtins(
                        result[4], history_limit
                    )
                except (msgspec.DecodeError, TypeError) as exc:
                    log.warning("history of %s unreadable (%s)", command.header.session_id, exc)
            self._launch(running, suspect=alone)
        if started:
            await self._log_records(started)

    def _free_slots(self) -> int:
        """Slots for new tasks: none while a suspect runs alone or waits to."""
        if self._suspect_running or self._quarantine:
            return 0
        return max(0, self.config.max_concurrency - len(self._running))

    def _launch(self, running: _Running, *, suspect: bool = False) -> None:
        self._running[running.key] = running
        running.suspect = suspect
        if suspect:
            self._suspect_running = True
        running.task = asyncio.create_task(
            self._run(running), name=f"byway-task-{running.entry_id}"
        )

    async def _give_up(self, running: _Running, raw: bytes, runs: int) -> None:
        """A task that keeps killing its workers: dead-letter it and end it FAILED."""
        record = self.recovery.dead_letter_record(running.stream, running.entry_id, raw, runs)
        await self.redis.xadd(
            self.keys.dead_letters(), {"data": record}, maxlen=10_000, approximate=True
        )
        log.error("dead-lettered %s after %d runs died", running.context.message_id, runs)
        message = (
            f"its worker died each of the {runs} times it ran alone; "
            "moved to the dead-letter stream"
        )
        await self._finish(
            running,
            AgentTaskResult(status=AgentState.FAILED, content=message),
            {"type": "DeadLettered", "message": message},
        )

    # -- running a task --------------------------------------------------------------------

    async def _run(self, running: _Running) -> None:
        ctx = running.context
        command = ctx.command
        resumed = isinstance(command, ResumeCommand)
        # a resume continues the run that suspended, whoever sent it (a callee, a group,
        # a deadline, the user)
        carried = ctx.record.carried_trace if resumed else None
        with tracing.task_span(
            f"byway.{'resume' if resumed else 'task'} {running.agent_type}",
            carried if carried is not None else command.header.metadata,
            {
                "byway.agent_type": running.agent_type,
                "byway.session_id": ctx.session_id,
                "byway.message_id": ctx.message_id,
                "byway.execution_id": ctx.execution_id,
                "byway.trace_id": ctx.trace_id,
                "byway.worker_id": self.worker.worker_id,
            },
            session_id=ctx.session_id,
            user_id=ctx.user_code,
            content=getattr(command, "content", None),
        ) as span:
            await self._run_traced(running, span)

    async def _before(self, ctx: AgentContext) -> None:
        """What a task gets before its handler: its agent config, its session's history
        (stores other than Redis), and the plugins' start hooks."""
        command = ctx.command
        version = ctx.record.config_version or ""
        configs = self.agent_configs
        if version and version != self.config_version:
            try:
                configs = await self.configs_of(version)
            except Exception as exc:
                log.warning(
                    "agent configs %s unavailable (%s); using the current ones", version, exc
                )
        ctx.agent_config = configs.get(ctx.current_agent_id)
        if (
            self.config.history_limit > 0
            and not isinstance(self.history, RedisHistoryStore)
            and _is_root_ask(command)
            and isinstance(command, AskAgentCommand)
        ):
            turns = await self._bounded_history(
                "read", ctx.session_id, self.history.list(ctx.session_id, self.config.history_limit)
            )
            if turns is not None:
                command.extra_payload["history"] = [msgspec.to_builtins(t) for t in turns]
        if self.plugins.has("on_task_start"):
            await self.plugins.fire("on_task_start", ctx)
        if (
            isinstance(command, ResumeCommand)
            and command.header.parent_message_id
            and self.plugins.has("on_call_agent_complete")
        ):
            await self.plugins.fire("on_call_agent_complete", ctx, command)

    async def _run_traced(self, running: _Running, span: Any) -> None:
        ctx = running.context
        error: dict[str, str] | None = None
        result: AgentTaskResult | None = None
        try:
            await self._before(ctx)
            raw = await self.worker.process_command(ctx.command, ctx)
            if ctx.cancel_event.is_set():
                # cancel promises CANCELLED: a handler that ignored it and returned (or
                # asked something) within the grace has its answer discarded
                log.info("task %s returned after its cancel; its answer is discarded",
                         ctx.message_id)  # fmt: skip
                result = AgentTaskResult(status=AgentState.CANCELLED)
                error = {"type": "Cancelled", "message": ctx.cancel_reason or "task cancelled"}
            elif ctx.suspension is None:
                result = utf8_safe(normalize_result(raw))
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
            error = {"type": type(exc).__name__, "message": str(exc)}
            if isinstance(exc, TaskError):  # an adapter's own error code (ADK's error_code)
                error = {
                    "type": exc.error_type or error["type"],
                    "message": exc.error_message or error["message"],
                }
            result = AgentTaskResult(
                status=AgentState.FAILED, content=f"{error['type']}: {error['message']}"
            )
        running.handler_done = True
        try:
            try:
                if result is None:
                    await self._suspend(running)
                else:
                    written = await self._finish(running, result, error)
                    if written == AgentState.CANCELLED != str(result.status).upper():
                        # its cancel was requested before its end was written: it ended so
                        result = AgentTaskResult(status=AgentState.CANCELLED)
                        error = {"type": "Cancelled", "message": ctx.cancel_reason or "cancelled"}
            except (RedisError, asyncio.CancelledError):
                raise  # its entry stays pending: recovered once Redis answers
            except Exception as exc:  # what it returned cannot be written: it fails, saying why
                log.exception("task %s could not end as it returned", ctx.message_id)
                error = {"type": type(exc).__name__, "message": _cut(str(exc), 500)}
                result = AgentTaskResult(
                    status=AgentState.FAILED, content=f"{error['type']}: {error['message']}"
                )
                await self._finish(running, result, error)
        finally:
            if self._running.get(running.key) is running:
                del self._running[running.key]
            if running.suspect:
                self._suspect_running = False
        if result is not None:
            tracing.record_outcome(span, str(result.status).upper(), result.content, error)
            await self._after(ctx, result, error)  # its slot is free already
        elif ctx.suspension is not None:
            tracing.record_outcome(span, str(ctx.suspension.status))

    async def _after(
        self, ctx: AgentContext, result: AgentTaskResult, error: dict[str, str] | None
    ) -> None:
        """Once the end is written: the plugins' end hooks."""
        status = str(result.status).upper()
        if status == AgentState.CANCELLED:
            if self.plugins.has("on_task_cancel"):
                reason = (error or {}).get("message", "") or ctx.cancel_reason
                await self.plugins.fire("on_task_cancel", ctx, reason)
        elif error is not None or status == AgentState.FAILED:
            if self.plugins.has("on_task_error"):
                await self.plugins.fire(
                    "on_task_error",
                    ctx,
                    error or {"type": "Failed", "message": str(result.content)},
                )
        elif self.plugins.has("on_task_complete"):
            await self.plugins.fire("on_task_complete", ctx, result)

    def _history_args(self, ctx: AgentContext, final: AgentTaskResult) -> tuple[Any, ...]:
        """FINISH's history arguments: a root task's turns go into the Redis store there.

        Beside the group of turns, FINISH gets where its last (the assistant's) turn
        starts and that turn as a cancelled run writes it: if the task's cancel was
        requested meanwhile, the script swaps it in (the answer is discarded)."""
        store = self.history
        if not (ctx.is_root and isinstance(store, RedisHistoryStore)):
            return (0, 0, "", 0, "")
        *said, answer = self._history_turns(ctx, final)  # the last one: the assistant's
        cancelled = msgspec.structs.replace(answer, content="", status=AgentState.CANCELLED)
        head = store.encode_group(said)[:-1] + (b"," if said else b"")
        group = head + _json.encode(answer) + b"]"
        return (store.max_entries, store.ttl_seconds, group, len(head), _json.encode(cancelled))

    def _history_turns(
        self, ctx: AgentContext, result: AgentTaskResult | None, question: str = ""
    ) -> list[HistoryEntry]:
        """The turns one run of a root task adds to its session's history: what the user
        said that started this run (the message, or an answer to the task's question) and
        what the agent said back (its answer, or its question). Each is written once: a
        run that suspends writes its part, the run that ends writes the rest. A run after
        the user's n-th answer marks its turns ``metadata={"run": n}``, so a store can tell
        a turn written again (a task ended twice) from a new one."""
        command, now = ctx.command, now_ms()
        run = ctx.record.user_answers
        metadata: dict[str, Any] = {"run": run} if run else {}
        turns = []
        if isinstance(command, AskAgentCommand) or ctx.record.resumed_by_user:
            turns.append(
                HistoryEntry(
                    role="user",
                    content=self._kept(getattr(command, "content", "")),
                    message_id=ctx.message_id,
                    agent_type=ctx.current_agent_id,
                    timestamp=now,
                    metadata=metadata,
                )
            )
        if result is not None:
            turns.append(
                HistoryEntry(
                    role="assistant",
                    content=self._kept(result.content),
                    message_id=ctx.message_id,
                    agent_type=ctx.current_agent_id,
                    status=str(result.status).upper(),
                    timestamp=now,
                    metadata=metadata,
                )
            )
        elif question:
            turns.append(
                HistoryEntry(
                    role="assistant",
                    content=self._kept(question),
                    message_id=ctx.message_id,
                    agent_type=ctx.current_agent_id,
                    status=AgentState.WAITING_USER,
                    timestamp=now,
                    metadata=metadata,
                )
            )
        return turns

    def _kept(self, content: Any) -> Any:
        """``content`` as a history turn keeps it: cut to ``max_history_bytes``."""
        limit = self.config.limits.max_history_bytes
        if isinstance(content, str):
            if len(content) * 4 <= limit:  # UTF-8 is at most 4 bytes a character
                return content
            data = content.encode("utf-8", "replace")
            if len(data) <= limit:
                return content
            cut = data[:limit].decode("utf-8", "ignore")
            return f"{cut}... [{len(data) - len(cut.encode()):,} more bytes not kept]"
        size = len(_json.encode(content))
        if size <= limit:
            return content
        return f"[{size:,} bytes of structured content not kept (max_history_bytes={limit:,})]"

    async def _suspend(self, running: _Running) -> None:
        """Record the wait, then send what it waits for, then acknowledge (SPEC §6)."""
        ctx = running.context
        suspension = ctx.suspension
        assert suspension is not None
        try:
            state = ctx.encoded_state()
        except LimitExceededError as exc:
            await self._finish(
                running,
                AgentTaskResult(status=AgentState.FAILED, content=str(exc)),
                {"type": type(exc).__name__, "message": str(exc)},
            )
            return
        now = now_ms()
        deadline = now + int(suspension.timeout * 1000) if suspension.timeout else 0
        wait: dict[str, Any] = {"wait_id": new_id("wait"), "deadline": deadline}
        detail: dict[str, Any] = {}
        if suspension.group_id:
            wait["group_id"] = detail["group_id"] = suspension.group_id
        if suspension.children:
            wait["children"] = detail["waiting_for"] = suspension.child_ids
        event = b""
        if suspension.question is not None:
            event = encode_event(
                trace_id=ctx.trace_id,
                session_id=ctx.session_id,
                event_type=EventType.TASK_STOP,
                source_agent_type=ctx.current_agent_id,
                message_id=ctx.message_id,
                parent_message_id=ctx.parent_message_id,
                data=events.ask_user_data(suspension.question),
            )
            detail["question"] = suspension.question.prompt[:200]
        verdict = await _scripts.SUSPEND.run(
            self.redis,
            [
                self.keys.session_registry(ctx.session_id),
                self.keys.session_stream(ctx.session_id),
                self.keys.session_lock(ctx.session_id),
            ],
            [
                ctx.execution_id,
                suspension.status,
                now,
                self.worker.worker_id,
                _json.encode(wait),
                state,
                _json.encode(detail),
                ctx.message_id,
                event,
                self.config.session_stream_maxlen,
                self.config.session_ttl_seconds,
                _json.encode(tracing.inject({})) if tracing.active() else "",
            ],
        )
        if verdict == -1:  # cancelled while it ran: end it instead of waiting
            await self._finish(
                running,
                AgentTaskResult(status=AgentState.CANCELLED),
                {"type": "Cancelled", "message": "cancelled"},
            )
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            if verdict == 1:
                if suspension.group_id:
                    self._queue_group(pipe, ctx, suspension.group_id, suspension.children, True)
                for child in suspension.children:
                    self.flow.queue_child(pipe, child)
                if deadline:
                    self.flow.queue_deadline(
                        pipe,
                        deadline,
                        {
                            "session_id": ctx.session_id,
                            "execution_id": ctx.execution_id,
                            "message_id": ctx.message_id,
                            "agent_type": running.agent_type,
                            "wait_id": wait["wait_id"],
                            "trace_id": ctx.trace_id,
                            "children": suspension.child_ids,
                        },
                    )
            pipe.xack(running.stream, self.config.consumer_group, running.entry_id)
            turns: list[HistoryEntry] = []
            if verdict == 1 and ctx.is_root:
                question = suspension.question.prompt if suspension.question else ""
                turns = self._history_turns(ctx, None, question)
                if isinstance(self.history, RedisHistoryStore):
                    self.history.queue_append(pipe, ctx.session_id, turns)
                    turns = []
            await _scripts.execute(self.redis, pipe, raise_on_error=True)
        if turns:
            await self._bounded_history(
                "write", ctx.session_id, self.history.append(ctx.session_id, turns)
            )
        if verdict == 1 and self.execution_log is not None:
            await self._log_execution(ctx)

    def _queue_group(
        self,
        pipe: Any,
        ctx: AgentContext,
        group_id: str,
        children: list[AskAgentCommand],
        caller_waits: bool,
    ) -> None:
        self.flow.queue_group(
            pipe,
            group_id,
            order=[c.header.message_id for c in children],
            caller_agent_type=ctx.current_agent_id if caller_waits else "",
            caller_message_id=ctx.message_id,
            session_id=ctx.session_id,
            trace_id=ctx.trace_id,
        )

    async def send_group(
        self,
        ctx: AgentContext,
        group_id: str,
        children: list[AskAgentCommand],
        *,
        caller_waits: bool,
    ) -> None:
        """Create a task group and send its children now (a group nobody waits on)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self._queue_group(pipe, ctx, group_id, children, caller_waits)
            for child in children:
                self.flow.queue_child(pipe, child)
            await _scripts.execute(self.redis, pipe, raise_on_error=True)

    async def _finish(
        self, running: _Running, result: AgentTaskResult, error: dict[str, str] | None
    ) -> str:
        """End the execution: record, final events or the reply to its caller, XACK.
        Returns the state written: CANCELLED, whatever ``result`` says, for a root task
        whose cancel was requested before its end was written (FINISH decides)."""
        ctx = running.context
        status = str(result.status).upper() or AgentState.COMPLETED
        if status not in (AgentState.COMPLETED, AgentState.FAILED, AgentState.CANCELLED):
            status = AgentState.COMPLETED
        base: dict[str, Any] = {
            "trace_id": ctx.trace_id,
            "session_id": ctx.session_id,
            "source_agent_type": running.agent_type,
            "message_id": ctx.message_id,
            "parent_message_id": ctx.parent_message_id,
        }
        final = AgentTaskResult(
            status=status,
            content=result.content,
            reply_data=result.reply_data,
            metadata=result.metadata,
            extra_payload=result.extra_payload,
        )
        payloads = [
            encode_event(
                # a called agent's final answer is part of its caller's reasoning
                event_type=EventType.REASONING_LOG_DELTA
                if ctx.is_sub_agent
                else EventType.FINAL_ANSWER,
                data=events.final_data(final, ctx.execution_id, error),
                metadata=result.metadata,
                **base,
            )
        ]
        why = self._unreadable(payloads[0], self.config.limits.max_event_bytes, "max_event_bytes")
        if why and status != AgentState.FAILED:
            # an answer no reader should have to take: the task fails, saying why
            message = f"result: {why}; return large data as an artifact"
            status = AgentState.FAILED
            error = {"type": "LimitExceededError", "message": message}
            final = AgentTaskResult(status=status, content=message, metadata=result.metadata)
            payloads[0] = encode_event(
                event_type=EventType.REASONING_LOG_DELTA
                if ctx.is_sub_agent
                else EventType.FINAL_ANSWER,
                data=events.final_data(final, ctx.execution_id, error),
                metadata=result.metadata,
                **base,
            )
        if ctx.is_root:
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
        usage = result.metadata.get("usage") if isinstance(result.metadata, dict) else None
        if isinstance(usage, dict):  # token usage an adapter reported: kept on the record
            summary["usage"] = usage
        write = _EndWrite(
            keys=[
                self.keys.session_registry(ctx.session_id),
                self.keys.session_stream(ctx.session_id),
                self.keys.session_lock(ctx.session_id),
                self.keys.session_queue(ctx.session_id),
                self.keys.session_history(ctx.session_id),
            ],
            args=[
                ctx.execution_id,
                status,
                now_ms(),
                self.worker.worker_id,
                _json.encode(summary),
                self.config.session_stream_maxlen,
                self.config.session_ttl_seconds,
                ctx.message_id,
                self.flow.lock_grace_ms,
                "1" if self.flow.outbox else "0",
                *self._history_args(ctx, final),
                *payloads,
            ],
            ack=(running.stream, running.entry_id),
            context=ctx,
            done=asyncio.get_running_loop().create_future(),
            status=status,
        )
        if ctx.task_group_id:
            write.group_result = {
                "message_id": ctx.message_id,
                "target_agent_type": running.agent_type,
                "status": status,
                "content": final.content,
                "reply_data": final.reply_data,
                **({"error": error} if error else {}),
            }
        elif ctx.reply_to and ctx.parent_message_id:
            reply = functools.partial(
                self.flow.reply_command,
                caller_agent_type=ctx.reply_to,
                caller_message_id=ctx.parent_message_id,
                callee_agent_type=running.agent_type,
                callee_message_id=ctx.message_id,
                session_id=ctx.session_id,
                trace_id=ctx.trace_id,
                user_code=ctx.user_code,
            )
            write.reply = reply(
                status=status,
                content=final.content,
                reply_data=final.reply_data if error is None else {"error": error},
                metadata={**ctx.command.header.metadata, **final.metadata},
                extra_payload=final.extra_payload,
            )
            limit = self.config.limits.max_command_bytes
            why = self._unreadable(write.reply, limit, "max_command_bytes", command=True)
            if why:  # its caller would never read it: it hears why instead of waiting on
                log.warning("reply of %s to its caller: %s", ctx.message_id, why)
                write.reply = reply(
                    status=AgentState.FAILED,
                    content=f"the reply {why}",
                    reply_data={"error": {"type": "LimitExceededError", "message": why}},
                )
        if ctx.is_root and not isinstance(self.history, RedisHistoryStore):
            # before the end: the session's next message starts once the end is written
            turns = self._history_turns(ctx, final)
            await self._bounded_history(
                "write", ctx.session_id, self.history.append(ctx.session_id, turns)
            )
        self._ending.append(write)
        if self._flushing:
            await write.done  # the task writing now takes this end in its next round
        else:
            await self._flush_ends()  # write now; ends that arrive meanwhile join the next round
        if write.status == AgentState.COMPLETED:
            self.completed += 1
        elif write.status == AgentState.CANCELLED:
            self.cancelled += 1
        else:
            self.failed += 1
        if self.execution_log is not None:
            await self._log_execution(ctx)
        return write.status

    def _unreadable(self, data: bytes, max_bytes: int, setting: str, command: bool = False) -> str:
        """Why a reader (a client, or the worker of a caller) would refuse ``data``: over
        ``max_bytes``, or nested past ``max_depth``; "" when it is fine."""
        if len(data) > max_bytes:
            return f"{len(data):,} bytes is over {setting}={max_bytes:,} (BYWAY_{setting.upper()})"
        depth = self.config.limits.max_depth
        if data.count(b"[") + data.count(b"{") > depth:  # else it cannot nest that deep
            decode = decode_command if command else decode_event
            try:
                decode(data, max_bytes=len(data), max_depth=depth)
            except ProtocolError as exc:
                if "nested" in str(exc):
                    return f"is nested deeper than max_depth={depth} (BYWAY_MAX_DEPTH)"
        return ""

    async def _bounded_history(self, what: str, session_id: str, call: Awaitable[_T]) -> _T | None:
        """Await a call of a history store other than Redis for at most
        ``history_timeout_seconds``; None when it failed or timed out (never raises: the
        task goes on). A timeout is logged at WARNING once, until a call succeeds again."""
        timeout = self.config.history_timeout_seconds
        try:
            result = await asyncio.wait_for(call, timeout)
        except TimeoutError:
            level = logging.DEBUG if self._history_slow else logging.WARNING
            self._history_slow = True
            log.log(
                level,
                "history %s of %s took more than %.1fs; the task goes on without it "
                "(further timeouts at DEBUG until the store answers in time)",
                what,
                session_id,
                timeout,
            )
            return None
        except Exception as exc:
            log.warning("history %s of %s failed: %s", what, session_id, exc)
            return None
        self._history_slow = False
        return result

    async def _log_execution(self, ctx: AgentContext) -> None:
        """Hand the execution's record as Redis has it now (its whole timeline) to the
        execution log: one read, made only for a store that keeps one."""
        try:
            record = await self.registry.get_execution(ctx.session_id, ctx.execution_id)
        except RedisError as exc:
            log.warning("execution %s not logged: %s", ctx.execution_id, exc)
            return
        if record is not None:
            await self._log_records([record])

    async def _log_records(self, records: list[ExecutionRecord]) -> None:
        assert self.execution_log is not None
        try:
            await self.execution_log.record_executions(records)
        except Exception as exc:  # the log's problem must never become the task's
            log.warning("execution log refused %d record(s): %s", len(records), exc)

    async def _flush_ends(self) -> None:
        """Write the ends of every task that finished meanwhile in one pipelined round trip.

        The first task to end writes at once; tasks that end while its round trip is in
        flight are written together in its next round, so under load many ends share one
        round trip and alone a task waits for nobody.
        """
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

    async def _write_ends(self, batch: list[_EndWrite]) -> None:
        for attempt in range(6):
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for write in batch:
                        write.queue(pipe, self.flow, self.config.consumer_group)
                    results = await _scripts.execute(self.redis, pipe)
                for item in results:
                    if isinstance(item, Exception):
                        log.error("ending a task failed: %s", item)
                for write in batch:
                    write.written(results)
                if self.flow.outbox:
                    await self._forward_ends(batch, results)
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

    async def _forward_ends(self, batch: list[_EndWrite], results: list[Any]) -> None:
        """Outbox mode: send what the end scripts left (next messages, group Resumes), then
        acknowledge the group children that waited for it."""
        sends: list[tuple[str, bytes]] = []
        resumed: list[str] = []
        for write in batch:
            forwards = write.forwards(results)
            sends += forwards
            if write.positions[1] >= 0 and Flow.group_resume(results[write.positions[1]]):
                resumed.append(write.context.task_group_id)
        await self.flow.forward(sends, resumed_groups=resumed)
        late = [w.ack for w in batch if w.ack_after_forward(self.flow)]
        if late:
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream, entry_id in late:
                    pipe.xack(stream, self.config.consumer_group, entry_id)
                await pipe.execute()

    async def _group_report_again(
        self, command: AskAgentCommand, status: str
    ) -> tuple[str, bytes] | None:
        """Outbox mode: a group child that had ended comes back (its worker died before
        its group's Resume went out): report it again; the last report sends the Resume.
        The result it reported first is kept; this one only stands in if that was lost."""
        h = command.header
        result = {"message_id": h.message_id, "target_agent_type": h.target_agent_type}
        async with self.redis.pipeline(transaction=False) as pipe:
            self.flow.queue_group_result(
                pipe, h.task_group_id, h.message_id, {**result, "status": status}
            )
            results = await _scripts.execute(self.redis, pipe)
        return Flow.group_resume(results[0])

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
        limit = self.config.limits.max_event_bytes
        if len(payload) > limit:
            raise LimitExceededError(
                f"{data.get('kind') or 'event'}: {len(payload):,} bytes is over "
                f"max_event_bytes={limit:,} (BYWAY_MAX_EVENT_BYTES); send it in smaller "
                "pieces, or as an artifact"
            )
        await self.redis.xadd(
            self.keys.session_stream(ctx.session_id),
            {"data": payload},
            maxlen=self.config.session_stream_maxlen,
            approximate=True,
        )

    # -- control commands ------------------------------------------------------------------

    async def _on_cancel(self, command: CancelTaskCommand, *, tree: bool = False) -> None:
        """A cancel from this worker's own stream stops a local task. One read from an
        agent-type stream (``tree``: a client without scripts, a by-framework client) asks
        for what ``GatewayClient.cancel_task`` does: cancel the task's tree, whose running
        tasks then get a cancel on their workers' own streams."""
        if tree:
            try:
                await self.flow.cancel_tree(
                    command.header.session_id,
                    command.target_message_id,
                    reason=command.reason or "cancelled",
                    mode=command.cancel_mode,
                    requested_by=command.requested_by or "client",
                )
            except ResponseError as exc:  # a wrong-type key: retrying cannot help
                log.warning("cancel of %r failed: %s", command.target_message_id, exc)
            return
        # a cancel reaches only a task of the session its header names
        running = self._running.get((command.header.session_id, command.target_message_id))
        if running is None or running.task is None:
            log.debug("cancel for %s: not running here", command.target_message_id)
            return
        ctx = running.context
        ctx.cancel_reason = command.reason or "cancelled"
        ctx.cancel_event.set()
        with contextlib.suppress(Exception):
            await self.worker.on_cancel_task(command)
        task = running.task
        if running.handler_done:
            return  # it is already ending; its end sees cancel_requested
        if command.cancel_mode == CancelMode.FORCE:
            task.cancel()
            return
        grace = self.config.cancel_grace_seconds

        async def force_after_grace() -> None:
            await asyncio.sleep(grace)
            if not task.done() and not running.handler_done:
                log.info("task %s ignored cancel for %.1fs: cancelling", ctx.message_id, grace)
                task.cancel()

        timer = asyncio.create_task(force_after_grace())
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    # -- acknowledgement and dead letters --------------------------------------------------

    async def _ack(self, stream: str, entry_id: str) -> None:
        await self.redis.xack(stream, self.config.consumer_group, entry_id)

    async def _dead_letter(self, stream: str, entry_id: str, fields: Any, reason: str) -> None:
        """Move an entry that cannot be decoded aside (with the reason) and acknowledge it.

        What is kept is bounded whatever the entry holds: the reason cut to a few hundred
        characters and at most the first KiB of the raw entry (with its full size)."""
        reason = _cut(reason, _REASON_KEPT)
        log.error("dead-lettering %s %s: %s", stream, entry_id, reason)
        raw = fields.get(b"data", b"") if isinstance(fields, dict) else b""
        raw = raw if isinstance(raw, bytes) else b""
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
                            "raw": raw[:_RAW_KEPT].decode("utf-8", "replace"),
                            "raw_bytes": len(raw),
                            "fields": sorted(_text(f)[:64] for f in fields)[:8]
                            if isinstance(fields, dict)
                            else [],
                        }
                    )
                },
                maxlen=10_000,
                approximate=True,
            )
            pipe.xack(stream, self.config.consumer_group, entry_id)
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


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


#: how much of a bad entry's reason and raw bytes its dead letter keeps
_REASON_KEPT = 300
_RAW_KEPT = 1024


class _StreamReaders:
    """One blocking reader per control stream, for a Redis Cluster (where one XREADGROUP
    cannot span streams of different slots). Each reader reads only while the runner has
    free slots (its own stream always, for cancels) and waits until what it read has been
    dispatched before it reads again, so the runner never takes more than it can start."""

    def __init__(self, runner: WorkerRunner, streams: list[str]) -> None:
        self.runner = runner
        self.inbox: asyncio.Queue[tuple[Any, asyncio.Future[None]]] = asyncio.Queue()
        self._handed: list[asyncio.Future[None]] = []
        self.tasks = [
            asyncio.create_task(self._read(s, s == runner._own_stream), name=f"byway-read-{s}")
            for s in streams
        ]

    async def _read(self, stream: str, own: bool) -> None:
        runner = self.runner
        config = runner.config
        group, consumer = config.consumer_group, runner.worker.worker_id
        backoff = 0.1
        while True:
            free = runner._free_slots()
            if not own and free <= 0:
                await asyncio.sleep(_SATURATED_BLOCK_MS / 1000)
                continue
            count = config.fetch_count if own else min(config.fetch_count, free)
            try:
                reply: Any = await runner.redis.xreadgroup(
                    group, consumer, {stream: ">"}, count=count, block=config.block_ms
                )
                runner.redis_ok_at = time.monotonic()
                backoff = 0.1
            except RedisError as exc:
                if _lost_group(exc):
                    await runner._after_lost_group()
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
