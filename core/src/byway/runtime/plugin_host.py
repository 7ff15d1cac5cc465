"""The plugin host: loads the worker's plugins, installs what they provide (agent
configs, a history store, a tracer provider), publishes the agent-config snapshot and
reloads it all on a ``ReloadPluginsCommand``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import msgspec
from redis.exceptions import RedisError

from byway._log import get_logger
from byway.config import AgentConfig, configs_from_snapshot, snapshot_body, snapshot_version
from byway.history import HistoryStore
from byway.plugins import Plugin, PluginBuildContext, PluginError, discover_plugins
from byway.protocol import ReloadPluginsCommand, now_ms
from byway.runtime.history import history_sink
from byway.runtime.services import WorkerServices

__all__ = ["PluginHost"]

log = get_logger("byway.worker")

#: reload commands one worker keeps to acknowledge at once (older ones get no ack)
_RELOADS_ANSWERED = 100
_json = msgspec.json.Encoder()


class PluginHost:
    """The plugins of one runner and the agent configs they registered."""

    def __init__(self, services: WorkerServices, source: Iterable[Plugin] | None) -> None:
        self.services = services
        self._plugin_source = source
        self.plugins = services.plugins
        #: the tracer provider a plugin installed (OpenTelemetry keeps the first)
        self._tracer_provider: Any = None
        #: agent configs the plugins registered, and their snapshot version
        self.agent_configs: dict[str, AgentConfig] = {}
        self.config_version = ""
        self._snapshots: dict[str, dict[str, AgentConfig]] = {}
        self._reload_lock = asyncio.Lock()
        #: reload commands not yet answered, and the task answering them (one at a time)
        self._reloads_waiting: list[ReloadPluginsCommand] = []
        self._reload_task: asyncio.Task[None] | None = None

    def _build_context(self, reload: ReloadPluginsCommand | None = None) -> PluginBuildContext:
        """A fresh build context; on a reload with by-framework's reload fields too (the
        first command's id and reason when reloads coalesce)."""
        s = self.services
        ctx = PluginBuildContext(
            worker_id=s.worker_id,
            agent_types=list(s.agent_types),
            redis=s.redis,
            keys=s.keys,
        )
        if reload is not None:
            ctx.reload_id = reload.reload_id
            ctx.reason = reload.reason
            ctx.previous_stable_agent_configs = tuple(self.agent_configs.values())
            ctx.current_version = self.config_version
        return ctx

    def _pool_key(self) -> str:
        """Snapshot pointer of this worker's pool (its set of agent types)."""
        s = self.services
        return s.keys.agent_configs_snapshot("current:" + ",".join(sorted(s.agent_types)))

    async def load(self) -> None:
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
            await self._publish_configs(ctx.agent_configs.by_id())
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
        """Install a plugin's history store (and its execution log if it keeps one)."""
        s = self.services
        s.history = history_sink(store, s.config, s.registry)

    async def _last_good_configs(self) -> tuple[str, dict[str, AgentConfig]] | None:
        redis = self.services.redis
        version: Any = await redis.get(self._pool_key())
        if not version:
            return None
        raw: Any = await redis.get(self.services.keys.agent_configs_snapshot(version.decode()))
        return (version.decode(), configs_from_snapshot(raw)) if raw else None

    async def _publish_configs(self, configs: dict[str, AgentConfig]) -> None:
        """Store the configs' snapshot (JSON, by content version) and point the pool at it."""
        s = self.services
        self.agent_configs = configs
        self.config_version = snapshot_version(configs)
        if not self.config_version:
            return
        self._snapshots[self.config_version] = configs
        ttl = s.config.session_ttl_seconds
        async with s.redis.pipeline(transaction=False) as pipe:
            pipe.set(
                s.keys.agent_configs_snapshot(self.config_version),
                snapshot_body(configs, s.worker_id),
                ex=ttl,
            )
            pipe.set(self._pool_key(), self.config_version)
            await pipe.execute()

    async def configs_of(self, version: str) -> dict[str, AgentConfig]:
        """The agent configs of snapshot ``version`` (what an execution started with)."""
        if not version or version == self.config_version:
            return self.agent_configs
        if version not in self._snapshots:
            s = self.services
            raw: Any = await s.redis.get(s.keys.agent_configs_snapshot(version))
            if raw is None:
                log.warning("agent-config snapshot %s is gone; using the current one", version)
                return self.agent_configs
            self._snapshots[version] = configs_from_snapshot(raw)
        return self._snapshots[version]

    def start_reload(self, command: ReloadPluginsCommand) -> None:
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
            self.services.keep(task)

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
            ctx = self._build_context(commands[0])
            try:
                await self.plugins.build(ctx, reload=True)
                self._use_tracer_provider(ctx.tracer_provider)
                if ctx.history_store is not None:
                    self._use_history(ctx.history_store)
                await self._publish_configs(ctx.agent_configs.by_id())
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
        s = self.services
        ack = s.keys.plugin_reload_ack(command.reload_id)
        async with s.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(
                ack,
                {
                    "data": _json.encode(
                        {
                            "worker_id": s.worker_id,
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
