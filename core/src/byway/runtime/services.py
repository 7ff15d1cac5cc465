"""What every part of the runtime shares, and what a task's AgentContext uses.

:class:`WorkerServices` holds the worker, its Redis and key layout, the registry, the
flow, the config, the slots, the history sink and the outbox mode; the parts of the
runtime (intake, starter, executor, ender, maintenance, plugin host) each keep a
reference to it rather than to the runner. It is the
:class:`~byway.context.TaskServices` every :class:`~byway.context.AgentContext` gets.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import redis.asyncio as aioredis

from byway._process import ProcessIdentity
from byway.answers import AnswerNotices
from byway.config import RunnerConfig
from byway.context import AgentContext
from byway.errors import LimitExceededError
from byway.flow import Flow
from byway.history import RedisHistoryStore
from byway.keys import Keys
from byway.plugins import PluginManager
from byway.protocol import AskAgentCommand, encode_event
from byway.registry import WorkerInfo, WorkerRegistry
from byway.runtime.history import HistorySink, history_sink
from byway.runtime.outbox import DirectSends, outbox_mode
from byway.runtime.slots import Slots
from byway.settings import RedisSettings
from byway.signing import Signer
from byway.store.script import execute
from byway.worker import GatewayWorker

__all__ = ["WorkerServices"]


class WorkerServices:
    """The shared state of one runner (see the module docstring)."""

    def __init__(
        self,
        worker: GatewayWorker,
        agent_types: list[str],
        config: RunnerConfig,
        settings: RedisSettings,
        redis: aioredis.Redis,
        signer: Signer | None,
    ) -> None:
        self.worker = worker
        self.agent_types = agent_types
        self.config = config
        self.settings = settings
        self.redis = redis
        self.keys: Keys = settings.keys
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
        #: agent-type stream -> agent type
        self.streams = {self.keys.agent_stream(t): t for t in self.agent_types}
        self.own_stream = self.keys.worker_stream(worker.worker_id)
        #: tells a session about a user's answer no task took (late, duplicate, unreadable)
        self.answers = AnswerNotices(
            self.registry,
            self.keys,
            maxlen=self.config.session_stream_maxlen,
            ttl_s=self.config.session_ttl_seconds,
        )
        self.slots = Slots(self.config.max_concurrency)
        self.plugins = PluginManager(hook_timeout=self.config.plugin_hook_timeout_seconds)
        #: where conversation history goes (Redis unless a plugin sets another store)
        self.history: HistorySink = history_sink(
            RedisHistoryStore(self.redis, self.keys, ttl_seconds=self.config.session_ttl_seconds),
            self.config,
            self.registry,
        )
        #: what the scripts leave to the worker to send (outbox mode) and what not
        self.outbox: DirectSends = outbox_mode(self.redis, self.flow, self.config.consumer_group)
        self.stopping = asyncio.Event()
        #: background tasks (cancel timers, the reload) kept until they end
        self.timers: set[asyncio.Task[None]] = set()
        #: monotonic time Redis last answered a read or a heartbeat (readiness)
        self.redis_ok_at = 0.0

    @property
    def worker_id(self) -> str:
        return self.worker.worker_id

    def keep(self, task: asyncio.Task[None]) -> None:
        """Hold a background task until it ends."""
        self.timers.add(task)
        task.add_done_callback(self.timers.discard)

    async def ack(self, stream: str, entry_id: str) -> None:
        await self.redis.xack(stream, self.config.consumer_group, entry_id)

    # -- what a task's context uses (TaskServices) ---------------------------------------

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

    def queue_group(
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
            self.queue_group(pipe, ctx, group_id, children, caller_waits)
            for child in children:
                self.flow.queue_child(pipe, child)
            await execute(self.redis, pipe, raise_on_error=True)
