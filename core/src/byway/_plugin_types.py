"""The plugin types: :class:`Plugin`, its :class:`PluginManifest`, the
:class:`PluginBuildContext` it registers on, and the errors of loading one.

Public through :mod:`byway.plugins` (which also runs them: ``PluginManager``, discovery).
Both spellings live here: Byway's (``PluginManifest("audit")``, ``manifest`` on the class,
``setup``) and by-framework's (``PluginManifest(plugin_id="weather")`` passed to
``Plugin.__init__``, ``register_agent_configs`` returning configs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from byway._plugin_compat import AgentConfigs, PluginReloadResult, TaskFailure
from byway.config import AgentConfig
from byway.errors import ConfigurationError
from byway.keys import Keys

if TYPE_CHECKING:
    from byway.context import AgentContext
    from byway.history import HistoryStore
    from byway.protocol import AgentTaskResult, AskAgentCommand, ResumeCommand
    from byway.registry import WorkerInfo

__all__ = [
    "Plugin",
    "PluginBuildContext",
    "PluginDeclined",
    "PluginError",
    "PluginManifest",
    "PluginReloadContext",
]

_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class PluginError(ConfigurationError):
    """A plugin could not be loaded or set up (the message names it)."""


class PluginDeclined(Exception):
    """Raised by a plugin that has no configuration to run with; it is skipped."""


@dataclass(frozen=True, slots=True, init=False)
class PluginManifest:
    """Who a plugin is: ``id`` (unique), ``version``, ``priority``, ``enabled``.

    Two spellings, each with its own meaning of ``priority``:

    - ``PluginManifest("audit", priority=50)`` (or ``id=``), Byway's: **lower runs
      first**; defaults ``version="0"``, ``priority=100``.
    - ``PluginManifest(plugin_id="weather", priority=10)``, by-framework's: **higher runs
      first**, as there; defaults ``version="1.0.0"``, ``priority=0``.

    All plugins run in one order, by :attr:`rank` (lower first) then id: ``rank`` is
    ``priority`` for the first spelling and ``-priority`` for the second.
    ``higher_first=`` states the direction explicitly for either spelling. A manifest
    with ``enabled=False`` keeps its plugin from loading.
    """

    id: str
    version: str
    priority: int
    description: str
    enabled: bool
    higher_first: bool

    def __init__(
        self,
        id: str | None = None,
        version: str | None = None,
        priority: int | None = None,
        description: str = "",
        *,
        plugin_id: str | None = None,
        enabled: bool = True,
        higher_first: bool | None = None,
    ) -> None:
        if id is not None and plugin_id is not None:
            raise ConfigurationError("PluginManifest: give id or plugin_id, not both")
        field_name, value = ("id", id) if plugin_id is None else ("plugin_id", plugin_id)
        if not isinstance(value, str) or not _ID_RE.match(value):
            raise ConfigurationError(
                f"PluginManifest.{field_name}: expected 1-64 characters of [A-Za-z0-9_.-], "
                f"got {value!r}"
            )
        theirs = plugin_id is not None
        version = ("1.0.0" if theirs else "0") if version is None else version
        priority = (0 if theirs else 100) if priority is None else priority
        if not isinstance(version, str):
            raise ConfigurationError(f"PluginManifest.version: expected a string, got {version!r}")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise ConfigurationError(f"PluginManifest.priority: expected an int, got {priority!r}")
        for name, flag in (("enabled", enabled), ("higher_first", higher_first)):
            if flag is not None and not isinstance(flag, bool):
                raise ConfigurationError(f"PluginManifest.{name}: expected a bool, got {flag!r}")
        set_ = object.__setattr__
        set_(self, "id", value)
        set_(self, "version", version)
        set_(self, "priority", priority)
        set_(self, "description", description)
        set_(self, "enabled", enabled)
        set_(self, "higher_first", theirs if higher_first is None else higher_first)

    @property
    def plugin_id(self) -> str:
        """by-framework's name of :attr:`id`."""
        return self.id

    @property
    def rank(self) -> int:
        """Place in the one run order (lower first): see the class docstring."""
        return -self.priority if self.higher_first else self.priority


@dataclass(slots=True)
class PluginBuildContext:
    """What a plugin's :meth:`Plugin.setup` and ``register_agent_configs`` may use and
    register.

    ``agent_configs`` holds one :class:`AgentConfig` per agent id (a list that also reads
    like a dict by id); a second config of one id does what its ``on_conflict`` says
    (merge by default). On a hot reload the context also carries by-framework's reload
    fields: ``plugin_id``, ``reload_id``, ``reason``, ``current_agent_configs``,
    ``previous_stable_agent_configs`` and ``current_version``.
    """

    worker_id: str = ""
    agent_types: list[str] = field(default_factory=list)
    redis: Any = None
    keys: Keys = field(default_factory=Keys)
    agent_configs: AgentConfigs = field(default_factory=AgentConfigs)
    history_store: HistoryStore | None = None
    tracer_provider: Any = None
    plugin_id: str = ""
    reload_id: str = ""
    reason: str = ""
    previous_stable_agent_configs: tuple[AgentConfig, ...] = ()
    current_version: str = ""
    _prev_agent_configs: tuple[AgentConfig, ...] = ()

    def __post_init__(self) -> None:
        given: Any = self.agent_configs
        if not isinstance(given, AgentConfigs):
            self.agent_configs = AgentConfigs()
            self.add_agent_configs(given.values() if isinstance(given, dict) else given)

    def add_agent_config(self, config: AgentConfig) -> None:
        """Register ``config`` (a copy: merging never changes the plugin's object)."""
        if not isinstance(config, AgentConfig):
            raise ConfigurationError(
                f"add_agent_config: expected an AgentConfig, got {type(config).__name__}"
            )
        configs = self.agent_configs
        mine = configs.get(config.agent_id)
        if mine is None:
            configs.append(config.copy())
        elif mine is config or config.on_conflict == "skip":
            return
        elif config.on_conflict == "overwrite":
            configs[config.agent_id] = config.copy()
        elif config.on_conflict == "error":
            raise ConfigurationError(
                f"AgentConfig {config.agent_id!r}: registered twice (on_conflict='error')"
            )
        else:
            mine.merge(config)

    def add_agent_configs(self, configs: Iterable[AgentConfig]) -> None:
        """Register each of ``configs`` (what ``register_agent_configs`` returned)."""
        if isinstance(configs, AgentConfig | str) or not isinstance(configs, Iterable):
            raise ConfigurationError(
                f"register_agent_configs: expected a list of AgentConfig, "
                f"got {type(configs).__name__}"
            )
        for config in list(configs):
            self.add_agent_config(config)

    def list_agent_configs(self) -> list[AgentConfig]:
        """The configs registered so far (by-framework's name)."""
        return list(self.agent_configs)

    def set_agent_configs(self, new_configs: Iterable[AgentConfig]) -> None:
        """by-framework's name of :meth:`add_agent_configs`: configs already registered
        stay (as in by-framework, where a build only adds)."""
        self.add_agent_configs(new_configs)

    def replace_agent_configs(self, configs: Iterable[AgentConfig]) -> None:
        """Make ``configs`` the whole set (what a by-framework ``reload`` returns)."""
        kept = list(configs) if isinstance(configs, list | tuple) else configs
        self.agent_configs = AgentConfigs()
        self.add_agent_configs(kept)

    def get_agent_config(self, agent_id: str) -> AgentConfig | None:
        return self.agent_configs.get(agent_id)

    @property
    def current_agent_configs(self) -> tuple[AgentConfig, ...]:
        return tuple(self.agent_configs)

    def freeze_prev_agent_configs(self) -> None:
        self._prev_agent_configs = tuple(self.agent_configs)

    def get_prev_agent_configs(self) -> tuple[AgentConfig, ...]:
        """The configs as they were before the current plugin's turn."""
        return self._prev_agent_configs

    def set_history_store(self, store: HistoryStore) -> None:
        """Replace the default (Redis) history store, e.g. with a Postgres one."""
        self.history_store = store

    def set_tracer_provider(self, provider: Any) -> None:
        """Install an OpenTelemetry ``TracerProvider`` (a trace-provider plugin's job)."""
        self.tracer_provider = provider


#: by-framework's name of the context a reload receives (here the build context itself)
PluginReloadContext = PluginBuildContext


class Plugin:
    """Base class of plugins. Override what you need; every hook is optional.

    Set ``manifest`` on the class, or pass it to the constructor as by-framework plugins
    do (``super().__init__(PluginManifest(plugin_id="weather"))``, with an optional
    ``hook_timeout_seconds`` of this plugin's own). ``setup`` and then
    ``register_agent_configs`` run once at worker start: register agent configs (or
    return them from ``register_agent_configs``), a history store or a tracer provider.
    A hot reload runs ``reload``, by default both again. Hooks receive the task's
    :class:`AgentContext`; by-framework's hook signatures are accepted too (see
    ``docs/plugins.md``).
    """

    manifest: ClassVar[PluginManifest] = PluginManifest("unnamed")
    #: this plugin's hook timeout; None: the worker's ``plugin_hook_timeout_seconds``
    hook_timeout_seconds: float | None = None

    def __init__(
        self, manifest: PluginManifest | None = None, hook_timeout_seconds: float | None = None
    ) -> None:
        if manifest is not None:
            if not isinstance(manifest, PluginManifest):
                raise ConfigurationError(
                    f"Plugin.manifest: expected a PluginManifest, got {type(manifest).__name__}"
                )
            setattr(self, "manifest", manifest)  # noqa: B010 - an instance's own manifest
        if hook_timeout_seconds is not None:
            if not isinstance(hook_timeout_seconds, int | float) or hook_timeout_seconds <= 0:
                raise ConfigurationError(
                    f"hook_timeout_seconds: expected a positive number, got {hook_timeout_seconds!r}"
                )
            self.hook_timeout_seconds = hook_timeout_seconds

    @property
    def plugin_id(self) -> str:
        return self.manifest.id

    @property
    def name(self) -> str:
        return self.manifest.id

    @property
    def version(self) -> str:
        return self.manifest.version

    async def setup(self, ctx: PluginBuildContext) -> None:
        """Register what this plugin provides; raise :class:`PluginDeclined` to opt out."""

    async def register_agent_configs(
        self, build_context: PluginBuildContext
    ) -> list[AgentConfig] | None:
        """The agent configs this plugin provides (by-framework's way; runs after
        ``setup``); None when it registered them on the context itself."""
        return None

    async def reload(
        self, context: PluginBuildContext
    ) -> list[AgentConfig] | PluginReloadResult | None:
        """Re-read configuration and register again (hot reload). Default: ``setup`` and
        ``register_agent_configs``. A list (or :class:`PluginReloadResult`) returned
        becomes the whole set of configs, as by-framework's reload chain has it."""
        await self.setup(context)
        context.add_agent_configs(await self.register_agent_configs(context) or ())
        return None

    async def on_worker_startup(self, info: WorkerInfo) -> None: ...

    async def on_worker_shutdown(self, info: WorkerInfo) -> None: ...

    async def on_task_start(self, context: AgentContext) -> None: ...

    async def on_task_complete(self, context: AgentContext, result: AgentTaskResult) -> None: ...

    async def on_task_error(self, context: AgentContext, error: TaskFailure) -> None: ...

    async def on_task_cancel(self, context: AgentContext, reason: str) -> None: ...

    async def on_call_agent_start(
        self, context: AgentContext, command: AskAgentCommand
    ) -> None: ...

    async def on_call_agent_complete(self, context: AgentContext, reply: ResumeCommand) -> None: ...
