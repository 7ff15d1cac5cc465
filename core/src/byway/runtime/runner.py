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

The runner is a facade over the parts in :mod:`byway.runtime` (intake, starter,
executor, ender, maintenance, plugin host, recovery), which share one
:class:`~byway.runtime.services.WorkerServices`; it owns construction, the lifecycle
(``initialize``, ``start``, ``stop``, ``release``), the drain, signals and readiness.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from byway._log import get_logger
from byway.config import AgentConfig, RunnerConfig
from byway.context import AgentContext
from byway.errors import WorkerError
from byway.history import ExecutionLog, HistoryStore
from byway.plugins import Plugin
from byway.protocol import AskAgentCommand
from byway.runtime.ender import Ender
from byway.runtime.ends import EndBatcher
from byway.runtime.executor import Executor
from byway.runtime.intake import Intake
from byway.runtime.maintenance import Maintenance, Membership
from byway.runtime.plugin_host import PluginHost
from byway.runtime.recovery import Recovery
from byway.runtime.services import WorkerServices
from byway.runtime.starter import Starter
from byway.runtime.util import cut
from byway.settings import RedisSettings
from byway.signing import Signer
from byway.worker import GatewayWorker

__all__ = ["RunnerConfig", "WorkerRunner"]

log = get_logger("byway.worker")

#: failures of one loop within a minute that stop the worker (below: it restarts)
_LOOP_FAILURES = 5


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
        s = self.services = WorkerServices(
            worker, self.agent_types, self.config, self.settings, self.redis, signer
        )
        self.keys = s.keys
        self.registry = s.registry
        self.info = s.info
        self.flow = s.flow
        self.answers = s.answers
        self.slots = s.slots
        self.plugins = s.plugins
        self.recovery = Recovery(
            s.slots,
            s.redis,
            s.keys,
            s.config,
            consumer=worker.worker_id,
            streams=list(s.streams),
            own_stream=s.own_stream,
        )
        self.plugin_host = PluginHost(s, plugins)
        self.ender = Ender(s, EndBatcher(s))
        self.executor = Executor(s, self.ender, self.plugin_host)
        self.starter = Starter(s, self.executor, self.ender, self.plugin_host, self.recovery)
        self.membership = Membership(s, self.recovery)
        self.intake = Intake(
            s, self.starter, self.executor, self.plugin_host, self.membership.rejoin
        )
        self.maintenance = Maintenance(s, self.recovery, self.membership, self.intake)
        self._initialized = False
        self._consume_task: asyncio.Task[None] | None = None
        #: loops that failed and wait to start again, and why (readiness is false meanwhile)
        self._loop_trouble: dict[str, str] = {}
        #: why the worker stopped on its own (a loop kept failing); '' otherwise
        self.fatal = ""

    # -- what the parts keep ---------------------------------------------------------------

    @property
    def history(self) -> HistoryStore:
        """Where conversation history goes (Redis unless a plugin sets another store)."""
        return self.services.history.store

    @property
    def execution_log(self) -> ExecutionLog | None:
        """The history store's execution log, if it keeps one."""
        return self.services.history.execution_log

    @property
    def agent_configs(self) -> dict[str, AgentConfig]:
        """Agent configs the plugins registered."""
        return self.plugin_host.agent_configs

    @property
    def config_version(self) -> str:
        """The snapshot version of :attr:`agent_configs`."""
        return self.plugin_host.config_version

    @property
    def completed(self) -> int:
        return self.ender.completed

    @property
    def failed(self) -> int:
        return self.ender.failed

    @property
    def cancelled(self) -> int:
        return self.ender.cancelled

    @property
    def redis_ok_at(self) -> float:
        """Monotonic time Redis last answered a read or a heartbeat (readiness)."""
        return self.services.redis_ok_at

    async def configs_of(self, version: str) -> dict[str, AgentConfig]:
        """The agent configs of snapshot ``version`` (what an execution started with)."""
        return await self.plugin_host.configs_of(version)

    async def emit_event(self, ctx: AgentContext, event_type: str, data: dict[str, Any]) -> None:
        """Append one event to the task's session stream."""
        await self.services.emit_event(ctx, event_type, data)

    async def send_group(
        self,
        ctx: AgentContext,
        group_id: str,
        children: list[AskAgentCommand],
        *,
        caller_waits: bool,
    ) -> None:
        """Create a task group and send its children now (a group nobody waits on)."""
        await self.services.send_group(ctx, group_id, children, caller_waits=caller_waits)

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
        await self.plugin_host.load()
        await self.registry.register_worker(self.info)
        self.services.redis_ok_at = time.monotonic()
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent_type, strategy in self.membership.strategies().items():
                pipe.set(self.keys.agent_type_strategy(agent_type), strategy)
            await pipe.execute()
        self._initialized = True
        await self.worker.on_ready(self.redis, self.keys)
        await self.worker.on_startup()
        await self.plugins.fire("on_worker_startup", self.info)
        log.info(
            "worker %s ready: agent types %s, concurrency %d, redis %s",
            self.worker.worker_id,
            ",".join(self.agent_types),
            self.config.max_concurrency,
            self.settings.describe(),
        )

    async def start(self, handle_signals: bool = True) -> None:
        """Consume until :meth:`stop` (or SIGTERM/SIGINT), then drain. The signals are
        handled from the start: one that arrives while the worker is still joining stops
        it as soon as it has joined, gracefully (released lease, shutdown hooks)."""
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await self.initialize()
            await self._serve()
        finally:
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

    async def _serve(self) -> None:
        self.slots.backlog.extend(await self.intake.decode(await self.recovery.own_pending()))
        heartbeat = asyncio.create_task(
            self._supervised("heartbeat", self.maintenance.heartbeat_loop),
            name="byway-heartbeat",
        )
        sweeper = asyncio.create_task(
            self._supervised("deadline", self.maintenance.deadline_loop), name="byway-deadlines"
        )
        self._consume_task = asyncio.create_task(
            self._supervised("consume", self.intake.consume_loop), name="byway-consume"
        )
        try:
            await self.services.stopping.wait()
        finally:
            self._consume_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consume_task
            await self._drain()
            for loop_task in (heartbeat, sweeper):
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop_task

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run one of the worker's loops for as long as the worker runs. A loop that fails
        (a bug, or an error nothing else caught) is logged with its traceback, turns
        readiness false, and starts again after a backoff; one that fails
        ``_LOOP_FAILURES`` times within a minute stops the worker, which then exits
        non-zero (:attr:`fatal` says why)."""
        stopping = self.services.stopping
        backoff, failures = 0.1, list[float]()
        while not stopping.is_set():
            try:
                await loop()
                if stopping.is_set():
                    return
                raise WorkerError(f"the {name} loop ended on its own")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                now = time.monotonic()
                failures = [t for t in failures if now - t < 60] + [now]
                why = f"the {name} loop failed: {type(exc).__name__}: {cut(str(exc), 200)}"
                self._loop_trouble[name] = why
                if len(failures) >= _LOOP_FAILURES:
                    log.critical("%s (%d times in a minute); stopping", why, len(failures),
                                 exc_info=exc)  # fmt: skip
                    self.fatal = why
                    stopping.set()
                    return
                log.error("%s; restarting it in %.1fs", why, backoff, exc_info=exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._loop_trouble.pop(name, None)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.services.stopping.is_set():
            log.warning("second %s: cancelling running tasks now", sig.name)
            for running in self.slots.running.values():
                if running.task:
                    running.task.cancel()
            return
        log.info("%s received: draining (up to %.0fs)", sig.name, self.config.drain_timeout)
        self.services.stopping.set()

    def readiness(self) -> tuple[bool, str]:
        """Whether this worker consumes and Redis answered recently, and if not, why."""
        if not self._initialized:
            return False, "starting"
        if self.fatal:
            return False, self.fatal
        if self.services.stopping.is_set():
            return False, "stopping"
        if self._loop_trouble:
            return False, "; ".join(self._loop_trouble.values())
        limit = max(5.0, self.config.block_ms / 1000 * 2.5)
        silent = time.monotonic() - self.services.redis_ok_at
        if silent > limit:
            return False, f"redis has not answered for {silent:.0f}s"
        return True, "ready"

    async def stop(self) -> None:
        """Stop consuming; running tasks get ``drain_timeout`` seconds to finish."""
        self.services.stopping.set()

    async def release(self) -> None:
        """Leave the registry, release the lease and close the connection pool."""
        if self._initialized:
            await self.plugins.fire("on_worker_shutdown", self.info)
            if self.config.plugin_log_hook_stats_on_shutdown:
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
        running = self.slots.running
        tasks = [r.task for r in running.values() if r.task]
        unfinished = self.slots.take_waiting()
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
                    (r.stream, r.entry_id) for r in running.values() if r.task in pending
                ]
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=1.0)
        if unfinished:
            with contextlib.suppress(RedisError):
                await self.recovery.hand_back(unfinished)
