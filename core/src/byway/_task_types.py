"""What :class:`~byway.context.AgentContext` is built from: what a handler decided to
wait for (:class:`Suspension`), a task group's results (:class:`GroupResults`), and what
the context uses of the worker running it (:class:`TaskServices`, :class:`Hooks`; their
``ctx`` is the :class:`~byway.context.AgentContext`, typed ``Any`` here because that
module builds on this one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from byway.protocol import AskAgentCommand, AskUserEvent, new_id

if TYPE_CHECKING:
    from byway.config import AgentConfig, RunnerConfig
    from byway.flow import Flow
    from byway.keys import Keys
    from byway.registry import WorkerRegistry

__all__ = ["ByFrameworkCalls", "GroupResults", "Hooks", "Suspension", "TaskServices"]


@dataclass(slots=True)
class Suspension:
    """What a handler decided to wait for; the runner records it when the handler returns."""

    status: str  # WAITING_AGENT | WAITING_USER
    timeout: float | None = None
    children: list[AskAgentCommand] = field(default_factory=list)
    group_id: str = ""
    question: AskUserEvent | None = None

    @property
    def child_ids(self) -> list[str]:
        return [c.header.message_id for c in self.children]


class GroupResults(list[dict[str, Any]]):
    """A task group's results in task order; also read by message id (``keys``,
    ``values``, ``items``), as by-framework's README iterates ``results.values()``."""

    def keys(self) -> list[str]:
        return [str(result.get("message_id", "")) for result in self]

    def values(self) -> list[dict[str, Any]]:
        return list(self)

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        return [(str(result.get("message_id", "")), result) for result in self]


class Hooks(Protocol):
    """The plugins' lifecycle hooks, as a task fires them (``PluginManager``)."""

    def has(self, hook: str) -> bool: ...

    async def fire(self, hook: str, *args: Any) -> None: ...


class TaskServices(Protocol):
    """What an :class:`AgentContext` uses of the worker running it (the runtime's
    ``WorkerServices`` in a worker; anything with these members in a test)."""

    @property
    def redis(self) -> Any: ...

    @property
    def keys(self) -> Keys: ...

    @property
    def config(self) -> RunnerConfig: ...

    @property
    def registry(self) -> WorkerRegistry: ...

    @property
    def flow(self) -> Flow: ...

    @property
    def plugins(self) -> Hooks: ...

    @property
    def worker_id(self) -> str: ...

    async def emit_event(self, ctx: Any, event_type: str, data: dict[str, Any]) -> None:
        """Append one event to the task's session stream."""

    async def send_group(
        self,
        ctx: Any,
        group_id: str,
        children: list[AskAgentCommand],
        *,
        caller_waits: bool,
    ) -> None:
        """Create a task group and send its children now (a group nobody waits on)."""


class ByFrameworkCalls:
    """by-framework's conveniences on a task's context (mixed into ``AgentContext``)."""

    agent_configs: dict[str, AgentConfig]
    _services: TaskServices

    def list_agent_configs(self) -> list[AgentConfig]:
        """Every agent config plugins registered (as of this execution's snapshot)."""
        return list(self.agent_configs.values())

    def get_agent_config(self, agent_id: str) -> AgentConfig | None:
        return self.agent_configs.get(agent_id)

    async def get_active_workers(self) -> dict[str, dict[str, Any]]:
        """``{worker_id: {"agent_types", "last_seen"}}`` of every live worker."""
        return await self._services.registry.get_all_workers()

    def generate_message_id(self) -> str:
        """A fresh message id in Byway's form."""
        return new_id("msg")
