"""Configuration types: how a runner is tuned, and what an agent runs with.

:class:`RunnerConfig` tunes one :class:`~byway.runtime.runner.WorkerRunner`;
:class:`AgentConfig` is what plugins register for an agent type (tools, prompts, ...),
stored in Redis as a JSON snapshot under a content-derived version. Plain types only:
nothing here does I/O.
"""

from __future__ import annotations

import copy
import enum
import hashlib
import time
from dataclasses import dataclass, field
from string import Formatter
from typing import Any

import msgspec

from byway.errors import ConfigurationError, WorkerError
from byway.limits import Limits
from byway.records import DEFAULT_RECORD_TTL_S

#: what a new message does when its session is busy (``multitask_strategy``)
STRATEGIES = ("enqueue", "reject", "interrupt")

__all__ = [
    "CONFLICT_STRATEGIES",
    "AgentConfig",
    "CallbackType",
    "PromptTemplate",
    "RunnerConfig",
    "configs_from_snapshot",
    "snapshot_body",
    "snapshot_version",
]


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
    #: log each plugin's hook counts (ok/failed/timed out) when the worker stops
    plugin_log_hook_stats_on_shutdown: bool = True
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


def _name_of(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        return str(item.get("name", ""))
    return str(getattr(item, "name", None) or getattr(item, "__name__", None) or repr(item))


def _names(items: list[Any] | dict[str, Any]) -> list[str]:
    """Tools or skills by name: a list's items named, a dict's keys."""
    if isinstance(items, dict):
        return [str(k) for k in items]
    return [_name_of(t) for t in items]


def _key_name(key: Any) -> str:
    return str(key.value) if isinstance(key, enum.Enum) else str(key)


class CallbackType(enum.Enum):
    """Where an agent's callbacks run (by-framework's keys of ``AgentConfig.callbacks``)."""

    before_model_callback = "before_model_callback"
    after_model_callback = "after_model_callback"
    before_tool_callback = "before_tool_callback"
    after_tool_callback = "after_tool_callback"
    before_agent_callback = "before_agent_callback"
    after_agent_callback = "after_agent_callback"


@dataclass(slots=True)
class PromptTemplate:
    """A prompt with ``{name}`` placeholders; ``variables`` is found from ``content``.

    Goes in ``AgentConfig.prompts``; the snapshot keeps it as ``{"content", "variables"}``.
    """

    content: str
    variables: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.content, str):
            raise ConfigurationError(
                f"PromptTemplate.content: expected a string, got {type(self.content).__name__}"
            )
        if not self.variables:
            self.variables = [f for _, f, _, _ in Formatter().parse(self.content) if f]

    def render(self, **values: Any) -> str:
        """The prompt with ``values`` filled in; a missing variable raises ``KeyError``."""
        missing = [v for v in self.variables if v not in values]
        if missing:
            raise KeyError(f"PromptTemplate.render: missing variables {missing}")
        return self.content.format(**values)


def _prompt_snapshot(value: Any) -> Any:
    if isinstance(value, PromptTemplate):
        return {"content": value.content, "variables": list(value.variables)}
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


def _prompt_from_snapshot(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"content", "variables"}:
        return PromptTemplate(str(value["content"]), [str(v) for v in value["variables"]])
    return value


def _join(mine: list[Any] | dict[str, Any], theirs: list[Any] | dict[str, Any]) -> Any:
    """Tools (or skills) of two configs of one agent: lists add, dicts update, a list and a
    dict become a dict by name."""
    if isinstance(mine, list) and isinstance(theirs, list):
        return mine + theirs
    return {**_by_name(mine), **_by_name(theirs)}


def _by_name(items: list[Any] | dict[str, Any]) -> dict[str, Any]:
    return items if isinstance(items, dict) else {_name_of(t): t for t in items}


#: what registering a second config of one agent id does (``AgentConfig.on_conflict``)
CONFLICT_STRATEGIES = ("merge", "overwrite", "skip", "error")


@dataclass(slots=True)
class AgentConfig:
    """What an agent runs with: tools, prompts, skills, callbacks, sub-agents.

    Plugins register these (:meth:`PluginBuildContext.add_agent_config`, or by returning
    them from ``register_agent_configs``); adapters read them through
    ``context.agent_config``. ``tools`` and ``skills`` are lists or, as by-framework
    writes them, dicts by name; ``callbacks`` are keyed by name or :class:`CallbackType`;
    ``name``, ``description``, ``knowledge_bases`` and ``extra`` are by-framework's
    fields. ``on_conflict`` says what a second config of the same agent id does: merge
    into the first (the default), ``overwrite`` it, ``skip``, or ``error``. A snapshot
    (JSON: tools and callbacks by name) is stored in Redis under a content-derived
    version, so every execution records the version it ran with and a resume sees the
    same one.
    """

    agent_id: str
    tools: list[Any] | dict[str, Any] = field(default_factory=list)
    prompts: dict[str, Any] = field(default_factory=dict)
    skills: list[Any] | dict[str, Any] = field(default_factory=list)
    callbacks: dict[Any, Any] = field(default_factory=dict)
    sub_agents: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    description: str = ""
    knowledge_bases: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    on_conflict: str = "merge"

    def __post_init__(self) -> None:
        if not isinstance(self.agent_id, str) or not self.agent_id:
            raise ConfigurationError(
                f"AgentConfig.agent_id: expected a non-empty string, got {self.agent_id!r}"
            )
        for name in ("tools", "skills"):
            if not isinstance(getattr(self, name), list | dict):
                raise ConfigurationError(
                    f"AgentConfig.{name}: expected a list or a dict, "
                    f"got {type(getattr(self, name)).__name__}"
                )
        if self.on_conflict not in CONFLICT_STRATEGIES:
            raise ConfigurationError(
                f"AgentConfig.on_conflict: expected one of {', '.join(CONFLICT_STRATEGIES)}, "
                f"got {self.on_conflict!r}"
            )

    def copy(self) -> AgentConfig:
        return AgentConfig(
            agent_id=self.agent_id,
            tools=copy.copy(self.tools),
            prompts=dict(self.prompts),
            skills=copy.copy(self.skills),
            callbacks=dict(self.callbacks),
            sub_agents=list(self.sub_agents),
            metadata=dict(self.metadata),
            name=self.name,
            description=self.description,
            knowledge_bases=dict(self.knowledge_bases),
            extra=dict(self.extra),
            on_conflict=self.on_conflict,
        )

    def merge(self, other: AgentConfig) -> None:
        """Add what ``other`` (a later plugin's config for the same agent) brings."""
        self.tools = _join(self.tools, other.tools)
        self.prompts.update(other.prompts)
        self.skills = _join(self.skills, other.skills)
        self.callbacks.update(other.callbacks)
        self.sub_agents += [a for a in other.sub_agents if a not in self.sub_agents]
        self.metadata.update(other.metadata)
        self.name = other.name or self.name
        self.description = other.description or self.description
        self.knowledge_bases.update(other.knowledge_bases)
        self.extra.update(other.extra)

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe form: tools, skills and callbacks by name (by-framework's fields
        only when set, so a config without them keeps its version)."""
        out: dict[str, Any] = {
            "agent_id": self.agent_id,
            "tools": _names(self.tools),
            "prompts": {str(k): _prompt_snapshot(v) for k, v in self.prompts.items()},
            "skills": _names(self.skills),
            "callbacks": sorted(_key_name(k) for k in self.callbacks),
            "sub_agents": list(self.sub_agents),
            "metadata": self.metadata,
        }
        for name in ("name", "description"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.knowledge_bases:
            out["knowledge_bases"] = sorted(str(k) for k in self.knowledge_bases)
        if self.extra:
            out["extra"] = self.extra
        return out

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> AgentConfig:
        return cls(
            agent_id=str(data["agent_id"]),
            tools=list(data.get("tools", [])),
            prompts={k: _prompt_from_snapshot(v) for k, v in data.get("prompts", {}).items()},
            skills=list(data.get("skills", [])),
            callbacks=dict.fromkeys(data.get("callbacks", [])),
            sub_agents=list(data.get("sub_agents", [])),
            metadata=dict(data.get("metadata", {})),
            name=str(data.get("name", "")),
            description=str(data.get("description", "")),
            knowledge_bases=dict.fromkeys(data.get("knowledge_bases", [])),
            extra=dict(data.get("extra", {})),
        )


# -- agent-config snapshots ------------------------------------------------------------------


def snapshot_version(configs: dict[str, AgentConfig]) -> str:
    """A content-derived version of a set of agent configs ('' when there are none)."""
    if not configs:
        return ""
    body = msgspec.json.encode({k: configs[k].snapshot() for k in sorted(configs)}, order="sorted")
    return hashlib.sha256(body).hexdigest()[:16]


def snapshot_body(configs: dict[str, AgentConfig], worker_id: str) -> bytes:
    return msgspec.json.encode(
        {
            "version": snapshot_version(configs),
            "configs": {k: configs[k].snapshot() for k in sorted(configs)},
            "worker_id": worker_id,
            "created_at": int(time.time() * 1000),
        }
    )


def configs_from_snapshot(raw: bytes) -> dict[str, AgentConfig]:
    data = msgspec.json.decode(raw)
    return {k: AgentConfig.from_snapshot(v) for k, v in data["configs"].items()}
