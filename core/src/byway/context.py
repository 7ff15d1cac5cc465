"""AgentContext: what a handler sees of the task it runs and of Byway."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from byway import events
from byway.errors import TaskCancelledError
from byway.protocol import (
    ArtifactEvent,
    AskAgentCommand,
    Command,
    EventType,
    StateChangeEvent,
    StreamChunkEvent,
)

if TYPE_CHECKING:
    from byway.runner import WorkerRunner

__all__ = ["AgentContext"]

log = logging.getLogger("byway.task")


class AgentContext:
    """Per-task context handed to ``process_command``.

    Identity: ``session_id``, ``trace_id``, ``message_id``, ``parent_message_id``,
    ``execution_id``, ``current_agent_id`` (the agent type running), ``worker_id``,
    ``user_code``. Output: ``emit_chunk``, ``emit_state``, ``emit_artifact``. Control:
    ``check_cancelled``, ``update_execution_state``.
    """

    def __init__(
        self,
        runner: WorkerRunner,
        command: Command,
        *,
        execution_id: str,
        agent_type: str,
    ) -> None:
        header = command.header
        self._runner = runner
        self.command = command
        self.execution_id = execution_id
        self.current_agent_id = agent_type
        self.session_id = header.session_id
        self.trace_id = header.trace_id
        self.message_id = header.message_id
        self.parent_message_id = header.parent_message_id
        self.user_code = header.user_code
        self.worker_id = runner.worker.worker_id
        #: set when a called agent (not a root task) runs: its chunks are reasoning logs
        self.is_sub_agent = isinstance(command, AskAgentCommand) and bool(header.source_agent_type)
        self.cancel_event = asyncio.Event()
        self.cancel_reason = ""
        self.logger = logging.LoggerAdapter(
            log, {"session_id": self.session_id, "message_id": self.message_id}
        )

    @property
    def redis(self) -> Any:
        return self._runner.redis

    # -- output ----------------------------------------------------------------------------

    async def _emit(self, event_type: str, data: dict[str, Any]) -> None:
        await self._runner.emit_event(self, event_type, data)

    async def emit_chunk(
        self, event: StreamChunkEvent | str, event_type: str | None = None
    ) -> None:
        """Stream a piece of output (a token, a tool call...) to the session."""
        if not isinstance(event, (StreamChunkEvent, str)):
            raise TypeError(f"event: expected StreamChunkEvent or str, got {type(event).__name__}")
        if self.is_sub_agent:
            event_type = EventType.REASONING_LOG_DELTA
        await self._emit(event_type or EventType.ANSWER_DELTA, events.chunk_data(event))

    async def emit_state(self, event: StateChangeEvent | str) -> None:
        """Tell the session about a step (shown to users; not the execution's state)."""
        if not isinstance(event, (StateChangeEvent, str)):
            raise TypeError(f"event: expected StateChangeEvent or str, got {type(event).__name__}")
        await self._emit(EventType.STEP_COMPLETE, events.state_data(event))

    async def emit_artifact(self, event: ArtifactEvent | str) -> None:
        """Publish an artifact (a URL with metadata) to the session."""
        if not isinstance(event, (ArtifactEvent, str)):
            raise TypeError(f"event: expected ArtifactEvent or str, got {type(event).__name__}")
        await self._emit(EventType.STEP_COMPLETE, events.artifact_data(event))

    # -- control ---------------------------------------------------------------------------

    async def update_execution_state(self, state: str, **detail: Any) -> None:
        """Record ``state`` (with optional detail) on this execution's timeline."""
        if not isinstance(state, str) or not state:
            raise ValueError(f"state: expected a non-empty string, got {state!r}")
        await self._runner.registry.transition(
            self.session_id,
            self.execution_id,
            state,
            worker_id=self.worker_id,
            detail=detail or None,
        )

    def is_cancel_requested(self) -> bool:
        return self.cancel_event.is_set()

    async def check_cancelled(self) -> None:
        """Raise :class:`TaskCancelledError` if this task was asked to stop.

        Call it between steps of long work: a graceful cancel waits for it (up to the
        grace period) before cancelling the handler outright.
        """
        if self.cancel_event.is_set():
            raise TaskCancelledError(self.cancel_reason or "task cancelled")
