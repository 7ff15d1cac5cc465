"""Plugins: lifecycle hooks, agent configs, history stores and trace providers.

A plugin is a :class:`Plugin` subclass with a :class:`PluginManifest`. Workers find plugins
through the ``byway.plugins`` entry-point group (installing a package is all it takes), an
explicit ``plugin_list``, a ``plugin_configurator`` callback or a ``plugin_dir`` of ``.py``
files; ``BYWAY_DISABLED_PLUGINS`` (comma list of ids or entry-point names, ``*`` for all)
turns discovered ones off. A plugin's no-argument constructor reads its own configuration
and raises :class:`PluginDeclined` when there is none (one info line); a missing optional
dependency skips it (one info line); anything else a plugin raises while loading stops
the worker with the plugin's name.

Hooks are ``async`` methods; each call has a timeout, and a hook that fails or overruns is
logged and counted, never allowed to fail or stall the task. Plugins run in a fixed order:
priority (lower first), then id.

Adapters (LangGraph, ADK) register in ``byway.adapters``: a callable that takes the object
``byway worker module:attr`` names and returns a :class:`GatewayWorker`, or ``None`` when
the object is not its kind.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from byway._log import get_logger
from byway.config import AgentConfig, configs_from_snapshot, snapshot_body, snapshot_version
from byway.errors import ConfigurationError

if TYPE_CHECKING:
    from byway.context import AgentContext
    from byway.history import HistoryStore
    from byway.keys import Keys
    from byway.protocol import AgentTaskResult, AskAgentCommand, ResumeCommand
    from byway.registry import WorkerInfo
    from byway.worker import GatewayWorker

__all__ = [
    "ADAPTER_GROUP",
    "DISABLE_ENV",
    "HOOKS",
    "PLUGIN_GROUP",
    "AgentConfig",
    "Plugin",
    "PluginBuildContext",
    "PluginDeclined",
    "PluginError",
    "PluginManager",
    "PluginManifest",
    "adapt",
    "configs_from_snapshot",
    "discover_plugins",
    "snapshot_body",
    "snapshot_version",
]

log = get_logger("byway.plugins")

PLUGIN_GROUP = "byway.plugins"
ADAPTER_GROUP = "byway.adapters"
DISABLE_ENV = "BYWAY_DISABLED_PLUGINS"

#: The lifecycle hooks, in the order a task meets them.
HOOKS = (
    "on_worker_startup",
    "on_task_start",
    "on_call_agent_start",
    "on_call_agent_complete",
    "on_task_complete",
    "on_task_error",
    "on_task_cancel",
    "on_worker_shutdown",
)

_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class PluginError(ConfigurationError):
    """A plugin could not be loaded or set up (the message names it)."""


class PluginDeclined(Exception):
    """Raised by a plugin that has no configuration to run with; it is skipped."""


@dataclass(frozen=True, slots=True)
class PluginManifest:
    """Who a plugin is: ``id`` (unique), ``version``, ``priority`` (lower runs first)."""

    id: str
    version: str = "0"
    priority: int = 100
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_RE.match(self.id):
            raise ConfigurationError(
                f"PluginManifest.id: expected 1-64 characters of [A-Za-z0-9_.-], got {self.id!r}"
            )
        if not isinstance(self.priority, int):
            raise ConfigurationError(
                f"PluginManifest.priority: expected an int, got {self.priority!r}"
            )


@dataclass(slots=True)
class PluginBuildContext:
    """What a plugin's :meth:`Plugin.setup` may use and register."""

    worker_id: str
    agent_types: list[str]
    redis: Any
    keys: Keys
    agent_configs: dict[str, AgentConfig] = field(default_factory=dict)
    history_store: HistoryStore | None = None
    tracer_provider: Any = None

    def add_agent_config(self, config: AgentConfig) -> None:
        if not isinstance(config, AgentConfig):
            raise ConfigurationError(
                f"add_agent_config: expected an AgentConfig, got {type(config).__name__}"
            )
        # copies: merging must never change an object the plugin keeps (and registers
        # again on every reload)
        mine = self.agent_configs.get(config.agent_id)
        if mine is None:
            self.agent_configs[config.agent_id] = config.copy()
        else:
            mine.merge(config)

    def set_history_store(self, store: HistoryStore) -> None:
        """Replace the default (Redis) history store, e.g. with a Postgres one."""
        self.history_store = store

    def set_tracer_provider(self, provider: Any) -> None:
        """Install an OpenTelemetry ``TracerProvider`` (a trace-provider plugin's job)."""
        self.tracer_provider = provider


class Plugin:
    """Base class of plugins. Override what you need; every hook is optional.

    Set ``manifest`` on the class. ``setup`` runs once at worker start (and again on a
    hot reload unless ``reload`` is overridden): register agent configs, a history store
    or a tracer provider there. Hooks receive the task's :class:`AgentContext`.
    """

    manifest: ClassVar[PluginManifest] = PluginManifest("unnamed")

    async def setup(self, ctx: PluginBuildContext) -> None:
        """Register what this plugin provides; raise :class:`PluginDeclined` to opt out."""

    async def reload(self, ctx: PluginBuildContext) -> None:
        """Re-read configuration and register again (hot reload). Default: ``setup``."""
        await self.setup(ctx)

    async def on_worker_startup(self, info: WorkerInfo) -> None: ...

    async def on_worker_shutdown(self, info: WorkerInfo) -> None: ...

    async def on_task_start(self, ctx: AgentContext) -> None: ...

    async def on_task_complete(self, ctx: AgentContext, result: AgentTaskResult) -> None: ...

    async def on_task_error(self, ctx: AgentContext, error: dict[str, str]) -> None: ...

    async def on_task_cancel(self, ctx: AgentContext, reason: str) -> None: ...

    async def on_call_agent_start(self, ctx: AgentContext, command: AskAgentCommand) -> None: ...

    async def on_call_agent_complete(self, ctx: AgentContext, reply: ResumeCommand) -> None: ...


def _consume_result(task: asyncio.Future[Any]) -> None:
    """Retrieve a left-behind hook's outcome so asyncio does not log it as unretrieved."""
    if not task.cancelled():
        task.exception()


def _overrides(plugin: Plugin, hook: str) -> bool:
    return getattr(type(plugin), hook) is not getattr(Plugin, hook)


class PluginManager:
    """The worker's plugins in order, their hooks with timeouts and counts."""

    def __init__(self, plugins: Iterable[Plugin] = (), *, hook_timeout: float = 5.0) -> None:
        if hook_timeout <= 0:
            raise ConfigurationError(
                f"plugin_hook_timeout_seconds: expected a positive number, got {hook_timeout}"
            )
        self.hook_timeout = hook_timeout
        self.plugins: list[Plugin] = []
        self.stats: Counter[tuple[str, str, str]] = Counter()
        self._by_hook: dict[str, list[Plugin]] = {}
        self.set_plugins(plugins)

    def set_plugins(self, plugins: Iterable[Plugin]) -> None:
        ordered = sorted(plugins, key=lambda p: (p.manifest.priority, p.manifest.id))
        ids = [p.manifest.id for p in ordered]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise PluginError(f"plugins: more than one plugin with id {', '.join(twice)}")
        self.plugins = ordered
        self._by_hook = {h: [p for p in ordered if _overrides(p, h)] for h in HOOKS}

    def has(self, hook: str) -> bool:
        """Whether any plugin implements ``hook`` (callers skip the work otherwise)."""
        return bool(self._by_hook.get(hook))

    async def fire(self, hook: str, *args: Any) -> None:
        """Call ``hook`` on every plugin that has it, in order, each within the timeout.

        Never raises (except when the caller itself is being cancelled) and never waits
        past the timeout: a hook that overruns is cancelled and left behind, even if it
        ignores the cancellation. Failures and timeouts are logged and counted."""
        for plugin in self._by_hook.get(hook, ()):
            pid = plugin.manifest.id
            call = asyncio.ensure_future(getattr(plugin, hook)(*args))
            try:
                done, _ = await asyncio.wait({call}, timeout=self.hook_timeout)
            except asyncio.CancelledError:
                call.cancel()
                raise
            if not done:
                call.cancel()
                call.add_done_callback(_consume_result)
                self.stats[pid, hook, "timeout"] += 1
                log.warning("plugin %s: %s took over %.1fs; skipped", pid, hook, self.hook_timeout)
                continue
            error = call.exception() if not call.cancelled() else asyncio.CancelledError()
            if error is None:
                self.stats[pid, hook, "ok"] += 1
            else:
                self.stats[pid, hook, "error"] += 1
                log.warning("plugin %s: %s failed: %s: %s", pid, hook, type(error).__name__, error)

    async def build(self, ctx: PluginBuildContext, *, reload: bool = False) -> None:
        """Run every plugin's ``setup`` (or ``reload``); a plugin that declines is dropped.

        Every plugin gets its turn; if any failed, raises :class:`PluginError` naming
        them all (the plugins stay, so that a later reload tries them again)."""
        kept: list[Plugin] = []
        failed: list[str] = []
        for plugin in self.plugins:
            pid = plugin.manifest.id
            step = plugin.reload if reload else plugin.setup
            try:
                await asyncio.wait_for(step(ctx), max(self.hook_timeout, 30.0))
            except PluginDeclined as exc:
                log.info("plugin %s declined: %s", pid, exc)
                continue
            except Exception as exc:
                failed.append(
                    f"plugin {pid}: {'reload' if reload else 'setup'} failed: "
                    f"{type(exc).__name__}: {exc}"
                )
            kept.append(plugin)
        if not reload:
            self.set_plugins(kept)
        if failed:
            raise PluginError("; ".join(failed))
        if kept and not reload:
            log.info(
                "plugins: %s",
                ", ".join(f"{p.manifest.id} {p.manifest.version}" for p in kept),
            )

    def summary(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{plugin id: {hook: {"ok": n, "error": n, "timeout": n}}}``."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for (pid, hook, outcome), count in sorted(self.stats.items()):
            out.setdefault(pid, {}).setdefault(hook, {"ok": 0, "error": 0, "timeout": 0})[
                outcome
            ] = count
        return out

    def log_summary(self) -> None:
        for pid, hooks in self.summary().items():
            parts = [
                f"{hook} {c['ok']} ok/{c['error']} failed/{c['timeout']} timed out"
                for hook, c in hooks.items()
            ]
            log.info("plugin %s: %s", pid, "; ".join(parts))


# -- discovery -----------------------------------------------------------------------------


def _disabled() -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _instantiate(source: str, factory: Any) -> Plugin | None:
    """Build a plugin from a class (no-argument constructor) or take an instance."""
    if isinstance(factory, Plugin):
        return factory
    if not (isinstance(factory, type) and issubclass(factory, Plugin)):
        raise PluginError(f"plugin {source}: expected a Plugin subclass, got {factory!r}")
    try:
        return factory()
    except PluginDeclined as exc:
        log.info("plugin %s declined: %s", source, exc)
        return None
    except Exception as exc:
        raise PluginError(
            f"plugin {source}: constructor failed: {type(exc).__name__}: {exc}"
        ) from exc


def _is_own_module(missing: str | None, module: str) -> bool:
    """Whether the module that is missing is the entry point's own (or a parent of it)."""
    return bool(missing) and (module == missing or module.startswith(f"{missing}."))


def _load_entry_point(ep: EntryPoint) -> Any:
    try:
        return ep.load()
    except ModuleNotFoundError as exc:
        if _is_own_module(exc.name, ep.module):  # a typo or a broken install: loud
            raise PluginError(
                f"plugin {ep.name} ({ep.value}): its module {exc.name!r} does not exist"
            ) from exc
        log.info("plugin %s skipped: optional dependency %s is not installed", ep.name, exc.name)
        return None
    except Exception as exc:
        raise PluginError(
            f"plugin {ep.name} ({ep.value}): failed to load: {type(exc).__name__}: {exc}"
        ) from exc


def _from_dir(directory: str) -> list[Plugin]:
    path = Path(directory)
    if not path.is_dir():
        raise PluginError(f"plugin_dir: {directory!r} is not a directory")
    found: list[Plugin] = []
    for file in sorted(path.glob("*.py")):
        name = f"byway_plugin_dir_{file.stem}"
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        try:
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except ModuleNotFoundError as exc:
            log.info("plugin file %s skipped: %s is not installed", file.name, exc.name)
            continue
        except Exception as exc:
            raise PluginError(
                f"plugin file {file}: failed to load: {type(exc).__name__}: {exc}"
            ) from exc
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Plugin)
                and value is not Plugin
                and value.__module__ == name
            ):
                plugin = _instantiate(f"{file.name}:{value.__name__}", value)
                if plugin is not None:
                    found.append(plugin)
    return found


def discover_plugins(
    plugin_list: Iterable[Plugin | type[Plugin] | str] | None = None,
    plugin_configurator: Callable[[list[Plugin]], list[Plugin] | None] | None = None,
    plugin_dir: str | None = None,
) -> list[Plugin]:
    """The plugins a worker runs with.

    An explicit ``plugin_list`` (instances, classes or ``"module:Class"``) replaces
    entry-point discovery; ``plugin_dir`` adds the plugins defined in its ``.py`` files;
    ``plugin_configurator`` receives the list last and may change it (or return a new
    one). ``BYWAY_DISABLED_PLUGINS`` applies to discovered and directory plugins.
    """
    disabled = _disabled()
    everything = "*" in disabled
    plugins: list[Plugin] = []
    if plugin_list is not None:
        for item in plugin_list:
            factory: Any = item
            if isinstance(item, str):
                module_name, _, attr = item.partition(":")
                try:
                    factory = getattr(importlib.import_module(module_name), attr)
                except (ImportError, AttributeError) as exc:
                    raise PluginError(f"plugin {item}: cannot import: {exc}") from exc
            plugin = _instantiate(str(item), factory)
            if plugin is not None:
                plugins.append(plugin)
    elif not everything:
        for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
            if ep.name in disabled:
                log.info("plugin %s disabled by %s", ep.name, DISABLE_ENV)
                continue
            factory = _load_entry_point(ep)
            if factory is None:
                continue
            plugin = _instantiate(ep.name, factory)
            if plugin is not None and plugin.manifest.id not in disabled:
                plugins.append(plugin)
    if plugin_dir and not everything:
        plugins += [p for p in _from_dir(plugin_dir) if p.manifest.id not in disabled]
    if plugin_configurator is not None:
        changed = plugin_configurator(plugins)
        if changed is not None:
            plugins = list(changed)
    return plugins


def adapt(obj: Any, agent_types: list[str] | None = None) -> GatewayWorker | None:
    """The worker an installed adapter (``byway.adapters``) builds from ``obj``, if any.

    An adapter is a callable ``adapter(obj, agent_types)`` that returns a GatewayWorker
    serving ``agent_types`` (``--agent-type``; its own default when None), or None when
    ``obj`` is not its kind."""
    for ep in sorted(entry_points(group=ADAPTER_GROUP), key=lambda e: e.name):
        try:
            adapter = ep.load()
        except ModuleNotFoundError as exc:
            log.debug("adapter %s skipped: %s is not installed", ep.name, exc.name)
            continue
        worker = adapter(obj, agent_types)
        if worker is not None:
            log.info("%s served by the %s adapter", type(obj).__name__, ep.name)
            return worker  # type: ignore[no-any-return]
    return None
