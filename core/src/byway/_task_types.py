"""What a handler decided to wait for (:class:`Suspension`) and a task group's results
(:class:`GroupResults`): the values :class:`~byway.context.AgentContext` hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from byway.protocol import AskAgentCommand, AskUserEvent

__all__ = ["GroupResults", "Suspension"]


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
