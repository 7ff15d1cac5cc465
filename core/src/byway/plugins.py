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
:attr:`PluginManifest.rank` (lower first), then id; the rank is the priority of a
manifest spelled ``PluginManifest("id")`` (lower first) and minus the priority of one
spelled by-framework's way, ``PluginManifest(plugin_id="id")`` (higher first). by-framework's
plugin API (``Plugin.__init__(manifest)``, ``register_agent_configs``, its hook
signatures, ``registry.register_bundle`` in a configurator) runs beside Byway's.

Adapters (LangGraph, ADK) register in ``byway.adapters``: a callable that takes the object
``byway worker module:attr`` names and returns a :class:`GatewayWorker`, or ``None`` when
the object is not its kind.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from byway._log import get_logger
from byway._plugin_compat import (
    FORM_TEXT,
    AgentConfigs,
    PluginRegistry,
    PluginReloadResult,
    TaskFailure,
    adapt_hook,
    hook_form,
)
from byway._plugin_types import (
    Plugin,
    PluginBuildContext,
    PluginDeclined,
    PluginError,
    PluginManifest,
    PluginReloadContext,
)
from byway.config import (
    AgentConfig,
    CallbackType,
    PromptTemplate,
    configs_from_snapshot,
    snapshot_body,
    snapshot_version,
)
from byway.errors import ConfigurationError

if TYPE_CHECKING:
    from byway.worker import GatewayWorker

__all__ = [
    "ADAPTER_GROUP",
    "DISABLE_ENV",
    "HOOKS",
    "PLUGIN_GROUP",
    "AgentConfig",
    "AgentConfigs",
    "CallbackType",
    "Plugin",
    "PluginBuildContext",
    "PluginDeclined",
    "PluginError",
    "PluginManager",
    "PluginManifest",
    "PluginRegistry",
    "PluginReloadContext",
    "PluginReloadResult",
    "PromptTemplate",
    "TaskFailure",
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


def _consume_result(task: asyncio.Future[Any]) -> None:
    """Retrieve a left-behind hook's outcome so asyncio does not log it as unretrieved."""
    if not task.cancelled():
        task.exception()


def _overrides(plugin: Plugin, hook: str) -> bool:
    return getattr(type(plugin), hook) is not getattr(Plugin, hook)


def _bound_hooks(plugin: Plugin, hook: str) -> Callable[..., Any]:
    """``plugin``'s override of ``hook``, called with Byway's arguments whichever form
    (Byway's or by-framework's) it is written in; read once, when the plugin loads."""
    method = getattr(plugin, hook)
    form = hook_form(hook, method)
    if form is None:
        raise PluginError(
            f"plugin {plugin.manifest.id}: {hook} takes parameters that fit none of its "
            f"forms; expected {FORM_TEXT[hook]}"
        )
    return adapt_hook(hook, method, form)


async def _build_one(plugin: Plugin, ctx: PluginBuildContext, reload: bool) -> None:
    if not reload:
        await plugin.setup(ctx)
        ctx.add_agent_configs(await plugin.register_agent_configs(ctx) or ())
        return
    out = await plugin.reload(ctx)
    if isinstance(out, PluginReloadResult):
        ctx.replace_agent_configs(out.agent_configs)
    elif out is not None:
        ctx.replace_agent_configs(out)


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
        self._by_hook: dict[str, list[tuple[Plugin, Callable[..., Any]]]] = {}
        self.set_plugins(plugins)

    def set_plugins(self, plugins: Iterable[Plugin]) -> None:
        """Order ``plugins`` (:attr:`PluginManifest.rank`, then id), leave out disabled
        ones and read each hook override's form."""
        active = []
        for plugin in plugins:
            if plugin.manifest.enabled:
                active.append(plugin)
            else:
                log.info("plugin %s is disabled in its manifest", plugin.manifest.id)
        ordered = sorted(active, key=lambda p: (p.manifest.rank, p.manifest.id))
        ids = [p.manifest.id for p in ordered]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise PluginError(f"plugins: more than one plugin with id {', '.join(twice)}")
        self._by_hook = {
            h: [(p, _bound_hooks(p, h)) for p in ordered if _overrides(p, h)] for h in HOOKS
        }
        self.plugins = ordered

    def has(self, hook: str) -> bool:
        """Whether any plugin implements ``hook`` (callers skip the work otherwise)."""
        return bool(self._by_hook.get(hook))

    async def fire(self, hook: str, *args: Any) -> None:
        """Call ``hook`` on every plugin that has it, in order, each within the timeout
        (the plugin's own ``hook_timeout_seconds``, else the worker's).

        Never raises (except when the caller itself is being cancelled) and never waits
        past the timeout: a hook that overruns is cancelled and left behind, even if it
        ignores the cancellation. Failures and timeouts are logged and counted."""
        for plugin, bound in self._by_hook.get(hook, ()):
            pid = plugin.manifest.id
            timeout = plugin.hook_timeout_seconds or self.hook_timeout
            call = asyncio.ensure_future(bound(*args))
            try:
                done, _ = await asyncio.wait({call}, timeout=timeout)
            except asyncio.CancelledError:
                call.cancel()
                raise
            if not done:
                call.cancel()
                call.add_done_callback(_consume_result)
                self.stats[pid, hook, "timeout"] += 1
                log.warning("plugin %s: %s took over %.1fs; skipped", pid, hook, timeout)
                continue
            error = call.exception() if not call.cancelled() else asyncio.CancelledError()
            if error is None:
                self.stats[pid, hook, "ok"] += 1
            else:
                self.stats[pid, hook, "error"] += 1
                log.warning("plugin %s: %s failed: %s: %s", pid, hook, type(error).__name__, error)

    async def build(self, ctx: PluginBuildContext, *, reload: bool = False) -> None:
        """Run every plugin's ``setup`` and ``register_agent_configs`` (or ``reload``); a
        plugin that declines is dropped.

        Every plugin gets its turn; if any failed, raises :class:`PluginError` naming
        them all (the plugins stay, so that a later reload tries them again)."""
        kept: list[Plugin] = []
        failed: list[str] = []
        for plugin in self.plugins:
            pid = plugin.manifest.id
            ctx.plugin_id = pid
            ctx.freeze_prev_agent_configs()
            try:
                await asyncio.wait_for(
                    _build_one(plugin, ctx, reload), max(self.hook_timeout, 30.0)
                )
            except PluginDeclined as exc:
                log.info("plugin %s declined: %s", pid, exc)
                continue
            except Exception as exc:
                failed.append(
                    f"plugin {pid}: {'reload' if reload else 'setup'} failed: "
                    f"{type(exc).__name__}: {exc}"
                )
            kept.append(plugin)
        ctx.plugin_id = ""
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
                source = f"{file.name}:{value.__name__}"
                if _needs_arguments(value):  # a base class, as by-framework skips them
                    log.warning("plugin file %s: %s skipped: its constructor takes arguments",
                                file.name, value.__name__)  # fmt: skip
                    continue
                plugin = _instantiate(source, value)
                if plugin is not None and plugin.manifest is Plugin.manifest:
                    log.warning("plugin file %s: %s skipped: it has no manifest",
                                file.name, value.__name__)  # fmt: skip
                elif plugin is not None:
                    found.append(plugin)
    return found


def _needs_arguments(cls: type[Plugin]) -> bool:
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.default is p.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        for p in params
    )


def _configure(plugins: list[Plugin], configurator: Callable[..., Any]) -> list[Plugin]:
    """Run ``plugin_configurator`` on a :class:`PluginRegistry` of ``plugins``; an async
    one (by-framework allows it) runs to its end here, before the worker's loop starts."""
    registry = PluginRegistry(plugins)
    changed = configurator(registry)
    if inspect.isawaitable(changed):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            changed = asyncio.run(_wait(changed))
        else:
            if inspect.iscoroutine(changed):
                changed.close()
            raise PluginError(
                "plugin_configurator: an async configurator runs only before the event "
                "loop starts (run_worker); inside a running loop pass plugins instead"
            )
    out = []
    for i, item in enumerate(registry if changed is None else changed):
        plugin = _instantiate(f"plugin_configurator[{i}]", item)
        if plugin is not None:
            out.append(plugin)
    return out


async def _wait(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def discover_plugins(
    plugin_list: Iterable[Plugin | type[Plugin] | str] | None = None,
    plugin_configurator: Callable[[PluginRegistry], Any] | None = None,
    plugin_dir: str | None = None,
) -> list[Plugin]:
    """The plugins a worker runs with.

    An explicit ``plugin_list`` (instances, classes or ``"module:Class"``) replaces
    entry-point discovery; ``plugin_dir`` adds the plugins defined in its ``.py`` files
    (classes whose constructor needs arguments, or without a manifest, are skipped);
    ``plugin_configurator`` receives the list last, as a :class:`PluginRegistry`, and may
    change it, ``register_bundle`` more, or return a new list; it may be async.
    ``BYWAY_DISABLED_PLUGINS`` applies to discovered and directory plugins.
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
        plugins = _configure(plugins, plugin_configurator)
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
