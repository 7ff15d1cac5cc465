"""The by-framework spellings of the plugin API, beside Byway's own.

by-framework's hooks take other arguments than Byway's (``on_worker_startup(self)``,
``on_task_error(context, error: Exception)``, ``on_call_agent_start(context, target,
content)``, ``on_call_agent_complete(context, target, result)``). Which form a plugin's
override uses is read once, from its number of positional parameters, when the plugin
is loaded (:func:`hook_form`); :func:`adapt_hook` then turns the one call the worker
makes into that form. Also here: the object a ``plugin_configurator`` receives
(:class:`PluginRegistry`), the agent configs a build context holds (:class:`AgentConfigs`,
a list that also reads like Byway's dict by agent id), and :class:`PluginReloadResult`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, SupportsIndex, overload

from byway.config import AgentConfig

__all__ = [
    "HOOK_FORMS",
    "AgentConfigs",
    "PluginRegistry",
    "PluginReloadResult",
    "TaskFailure",
    "adapt_hook",
    "hook_form",
]

#: positional parameters (after ``self``) each hook may take; Byway's form first
HOOK_FORMS: dict[str, tuple[int, ...]] = {
    "on_worker_startup": (1, 0),
    "on_worker_shutdown": (1, 0),
    "on_task_start": (1,),
    "on_task_complete": (2,),
    "on_task_error": (2,),
    "on_task_cancel": (2,),
    "on_call_agent_start": (2, 3),
    "on_call_agent_complete": (2, 3),
}

#: how each form reads, for the error that names a hook no form fits
FORM_TEXT: dict[str, str] = {
    "on_worker_startup": "(info) or ()",
    "on_worker_shutdown": "(info) or ()",
    "on_task_start": "(ctx)",
    "on_task_complete": "(ctx, result)",
    "on_task_error": "(ctx, error)",
    "on_task_cancel": "(ctx, reason)",
    "on_call_agent_start": "(ctx, command) or (ctx, target, content)",
    "on_call_agent_complete": "(ctx, reply) or (ctx, target, result)",
}


class TaskFailure(Exception, Mapping[str, str]):
    """How a task failed, as ``on_task_error`` receives it.

    An exception for by-framework's hooks (``str(error)`` is the message, ``error.type``
    the failed exception's class name) and the read-only mapping Byway's hooks read
    (``error["type"]``, ``error["message"]``); it compares equal to that dict.
    """

    def __init__(self, fields: Mapping[str, str]) -> None:
        self._fields = {str(k): str(v) for k, v in fields.items()}
        super().__init__(self._fields.get("message", ""))

    @property
    def type(self) -> str:
        return self._fields.get("type", "")

    @property
    def message(self) -> str:
        return self._fields.get("message", "")

    def __getitem__(self, key: str) -> str:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._fields.items())))

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"TaskFailure({self._fields!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (TaskFailure, (self._fields,))


def hook_form(hook: str, method: Callable[..., Any]) -> int | None:
    """How many positional arguments to pass the override ``method`` of ``hook`` (one
    of :data:`HOOK_FORMS`), or None when none of the hook's forms fits it."""
    forms = HOOK_FORMS[hook]
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):  # no signature to read: Byway's form
        return forms[0]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return forms[0]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    fits = [n for n in forms if len(required) <= n <= len(positional)]
    if not fits:
        return None
    return len(positional) if len(positional) in fits else fits[0]


def _call_result(reply: Any) -> dict[str, Any]:
    """A callee's reply as by-framework's ``on_call_agent_complete`` result: its keys
    (``status``, ``message_id`` of the callee, ``parent_message_id`` of the caller,
    ``target_agent_type``) and the reply's ``content`` and ``reply_data``."""
    h = reply.header
    return {
        "status": reply.status,
        "message_id": h.parent_message_id,
        "parent_message_id": h.message_id,
        "target_agent_type": h.source_agent_type,
        "content": reply.content,
        "reply_data": reply.reply_data,
    }


def adapt_hook(hook: str, method: Callable[..., Awaitable[Any]], form: int) -> Callable[..., Any]:
    """``method`` called the way the worker calls ``hook``: with Byway's arguments,
    turned into the override's ``form`` (from :func:`hook_form`)."""
    if hook == "on_task_error":

        async def error_hook(ctx: Any, error: Mapping[str, str]) -> None:
            await method(ctx, error if isinstance(error, TaskFailure) else TaskFailure(error))

        return error_hook
    if form == HOOK_FORMS[hook][0]:
        return method
    if hook in ("on_worker_startup", "on_worker_shutdown"):

        async def worker_hook(info: Any) -> None:
            await method()

        return worker_hook
    if hook == "on_call_agent_start":

        async def call_start(ctx: Any, command: Any) -> None:
            await method(ctx, command.header.target_agent_type, command.content)

        return call_start

    async def call_complete(ctx: Any, reply: Any) -> None:
        await method(ctx, reply.header.source_agent_type, _call_result(reply))

    return call_complete


class PluginRegistry(list[Any]):
    """What a ``plugin_configurator`` receives: the plugins found so far.

    A list, so that a Byway configurator changes it in place or returns a new one, with
    by-framework's ``register_bundle(plugin)``/``register_bundles(plugins)``,
    ``get_plugin(plugin_id)``, ``get_active_plugins()``, ``apply_default_hook_timeout``
    and ``plugins`` (the list itself).
    """

    @property
    def plugins(self) -> list[Any]:
        return self

    def register_bundle(self, plugin: Any) -> None:
        """Add ``plugin`` (an instance already here is not added twice)."""
        if not any(p is plugin for p in self):
            self.append(plugin)

    def register_bundles(self, plugins: Iterable[Any]) -> None:
        for plugin in plugins:
            self.register_bundle(plugin)

    def get_plugin(self, plugin_id: str) -> Any:
        return next((p for p in self if p.manifest.id == plugin_id), None)

    def get_active_plugins(self) -> list[Any]:
        """The enabled plugins in the order they will run (rank, then id)."""
        active = [p for p in self if p.manifest.enabled]
        return sorted(active, key=lambda p: (p.manifest.rank, p.manifest.id))

    def apply_default_hook_timeout(self, timeout_seconds: float) -> None:
        """Give every plugin without a hook timeout of its own this one."""
        if timeout_seconds > 0:
            for plugin in self:
                if plugin.hook_timeout_seconds is None:
                    plugin.hook_timeout_seconds = timeout_seconds


class AgentConfigs(list[AgentConfig]):
    """A build context's agent configs, one per agent id, in registration order.

    A list as by-framework reads it (iterate, index, ``append``) that also reads as
    Byway's dict by agent id: ``configs["agent"]``, ``get``, ``items``, ``keys``,
    ``values``, ``"agent" in configs``.
    """

    def by_id(self) -> dict[str, AgentConfig]:
        """A dict by agent id (a later config of one id wins)."""
        return {c.agent_id: c for c in self}

    def get(self, agent_id: str, default: AgentConfig | None = None) -> AgentConfig | None:
        return next((c for c in self if c.agent_id == agent_id), default)

    def keys(self) -> list[str]:
        return [c.agent_id for c in self]

    def values(self) -> list[AgentConfig]:
        return list(self)

    def items(self) -> list[tuple[str, AgentConfig]]:
        return [(c.agent_id, c) for c in self]

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return any(c.agent_id == item for c in self)
        return super().__contains__(item)

    @overload
    def __getitem__(self, key: str) -> AgentConfig: ...
    @overload
    def __getitem__(self, key: SupportsIndex) -> AgentConfig: ...
    @overload
    def __getitem__(self, key: slice) -> list[AgentConfig]: ...
    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            found = self.get(key)
            if found is None:
                raise KeyError(key)
            return found
        return super().__getitem__(key)

    @overload
    def __setitem__(self, key: str, value: AgentConfig) -> None: ...
    @overload
    def __setitem__(self, key: SupportsIndex, value: AgentConfig) -> None: ...
    @overload
    def __setitem__(self, key: slice, value: Iterable[AgentConfig]) -> None: ...
    def __setitem__(self, key: Any, value: Any) -> None:
        if not isinstance(key, str):
            super().__setitem__(key, value)
            return
        for i, config in enumerate(self):
            if config.agent_id == key:
                super().__setitem__(i, value)
                return
        self.append(value)


@dataclass(frozen=True, slots=True)
class PluginReloadResult:
    """What a by-framework-style ``reload`` may return: the next full set of configs."""

    agent_configs: tuple[AgentConfig, ...]
