"""Configuration types: how a runner is tuned, and what an agent runs with.

:class:`RunnerConfig` tunes one :class:`~byway.runtime.runner.WorkerRunner`;
:class:`AgentConfig` is what plugins register for an agent type (tools, prompts, ...),
stored in Redis as a JSON snapshot under a content-derived version. Plain types only:
nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from byway.errors import WorkerError
from byway.limits import Limits
from byway.records import DEFAULT_RECORD_TTL_S

#: what a new message does when its session is busy (``multitask_strategy``)
STRATEGIES = ("enqueue", "reject", "interrupt")

__all__ = [
    "AgentConfig",
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


@dataclass(slots=True)
class AgentConfig:
    """What an agent runs with: tools, prompts, skills, callbacks, sub-agents.

    Plugins register these (:meth:`PluginBuildContext.add_agent_config`); adapters read
    them through ``context.agent_config``. A snapshot (JSON: tools and callbacks by name)
    is stored in Redis under a content-derived version, so every execution records the
    version it ran with and a resume sees the same one.
    """

    agent_id: str
    tools: list[Any] = field(default_factory=list)
    prompts: dict[str, str] = field(default_factory=dict)
    skills: list[str] = field(default_factory=list)
    callbacks: dict[str, Any] = field(default_factory=dict)
    sub_agents: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def copy(self) -> AgentConfig:
        return AgentConfig(
            agent_id=self.agent_id,
            tools=list(self.tools),
            prompts=dict(self.prompts),
            skills=list(self.skills),
            callbacks=dict(self.callbacks),
            sub_agents=list(self.sub_agents),
            metadata=dict(self.metadata),
        )

    def merge(self, other: AgentConfig) -> None:
        """Add what ``other`` (a later plugin's config for the same agent) brings."""
        self.tools += other.tools
        self.prompts.update(other.prompts)
        self.skills += [s for s in other.skills if s not in self.skills]
        self.callbacks.update(other.callbacks)
        self.sub_agents += [a for a in other.sub_agents if a not in self.sub_agents]
        self.metadata.update(other.metadata)

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe form: tools and callbacks by name."""
        return {
            "agent_id": self.agent_id,
            "tools": [_name_of(t) for t in self.tools],
            "prompts": dict(self.prompts),
            "skills": list(self.skills),
            "callbacks": sorted(self.callbacks),
            "sub_agents": list(self.sub_agents),
            "metadata": self.metadata,
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> AgentConfig:
        return cls(
            agent_id=str(data["agent_id"]),
            tools=list(data.get("tools", [])),
            prompts=dict(data.get("prompts", {})),
            skills=list(data.get("skills", [])),
            callbacks=dict.fromkeys(data.get("callbacks", [])),
            sub_agents=list(data.get("sub_agents", [])),
            metadata=dict(data.get("metadata", {})),
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
