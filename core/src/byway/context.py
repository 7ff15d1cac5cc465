"""AgentContext: what a handler sees of the task it runs and of Byway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from byway import events, tracing
from byway._log import get_logger
from byway._task_types import ByFrameworkCalls, GroupResults, Hooks, Suspension, TaskServices
from byway.errors import (
    ConfigurationError,
    LimitExceededError,
    NoOnlineWorkerError,
    TaskCancelledError,
)
from byway.flow import DEPTH_KEY, header_depth
from byway.protocol import (
    AgentState,
    ArtifactEvent,
    AskAgentCommand,
    AskUserEvent,
    Command,
    Content,
    EventType,
    MessageHeader,
    StateChangeEvent,
    StreamChunkEvent,
    new_id,
)
from byway.records import ExecutionRecord

if TYPE_CHECKING:
    from byway.config import AgentConfig
    from byway.keys import Keys
    from byway.workspace import Workspaces

__all__ = ["AgentContext", "GroupResults", "Hooks", "Suspension", "TaskServices"]

log = get_logger("byway.task")
T = TypeVar("T")

_SCHEDULER_STATES = frozenset(
    {"QUEUED", "RUNNING", "RESUMED", "WAITING_AGENT", "WAITING_USER", "CANCELLING"}
    | {"CANCELLED", "COMPLETED", "FAILED"}
)

#: The largest ``context.state`` (encoded) that survives a suspension.
MAX_STATE_BYTES = 64 * 1024


class AgentContext(ByFrameworkCalls):
    """Per-task context handed to ``process_command``.

    Identity: ``session_id``, ``trace_id``, ``message_id``, ``parent_message_id``,
    ``execution_id``, ``current_agent_id`` (the agent type running), ``worker_id``,
    ``user_code``. Output: ``emit_chunk``, ``emit_state``, ``emit_artifact``. Control:
    ``check_cancelled``, ``update_execution_state``.
    """

    def __init__(
        self,
        services: TaskServices,
        command: Command,
        *,
        execution_id: str,
        agent_type: str,
        record: ExecutionRecord | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        header = command.header
        self._services = services
        #: the execution record as it stood when this run started
        self.record = record if record is not None else ExecutionRecord(execution_id=execution_id)
        #: the agent config plugins registered for this agent type, as of the snapshot the
        #: execution started with (a resumed execution sees the same one); None if none
        self.agent_config: AgentConfig | None = None
        #: every agent config of that snapshot, by agent id
        self.agent_configs: dict[str, AgentConfig] = {}
        self.command = command
        self.execution_id = execution_id
        self.current_agent_id = agent_type
        self.session_id = header.session_id
        self.trace_id = header.trace_id
        self.message_id = header.message_id
        # a resumed execution keeps the identity of the ask that started it
        origin = record if record is not None else header
        self.parent_message_id = origin.parent_message_id
        self.task_group_id = origin.task_group_id
        self.user_code = origin.user_code or header.user_code
        source = origin.source_agent_type
        #: the caller's agent type when another agent waits for this task's reply
        self.reply_to = "" if source == "client" else source
        self.is_root = not self.reply_to and not self.parent_message_id
        self.depth = record.depth if record is not None else header_depth(header.metadata)
        self.worker_id = services.worker_id
        #: started by another agent (not a root task): its chunks are reasoning logs
        self.is_sub_agent = not self.is_root
        #: a small JSON object that survives suspensions of this execution
        self.state: dict[str, Any] = dict(state or {})
        self.suspension: Suspension | None = None
        self.cancel_event = asyncio.Event()
        self.cancel_reason = ""
        self.logger = logging.LoggerAdapter(
            log, {"session_id": self.session_id, "message_id": self.message_id}
        )
        #: the worker's workspaces (set by the worker that runs the task)
        self.workspaces: Workspaces | None = None

    @property
    def redis(self) -> Any:
        return self._services.redis

    @property
    def workspace(self) -> Path:
        """This task's scratch directory on this worker's disk, created on first access
        (mode 0o700) and removed when the task ends; below :attr:`session_workspace`.
        Local to this worker: a resume elsewhere finds it empty (see
        :mod:`byway.workspace`)."""
        return self._workspaces().task_dir(self.session_id, self.message_id)

    @property
    def session_workspace(self) -> Path:
        """This session's directory on this worker's disk, shared by its tasks here and
        removed once the session has been idle (see :mod:`byway.workspace`)."""
        return self._workspaces().session_dir(self.session_id)

    def _workspaces(self) -> Workspaces:
        if self.workspaces is None:
            raise ConfigurationError(
                "context.workspace: this context is not run by a worker (no workspace root)"
            )
        return self.workspaces

    @property
    def keys(self) -> Keys:
        """The key layout (namespace and schema) of the worker's Redis."""
        return self._services.keys

    # -- output ----------------------------------------------------------------------------

    async def _emit(self, event_type: str, data: dict[str, Any]) -> None:
        await self._services.emit_event(self, event_type, data)

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
        if state.upper() in _SCHEDULER_STATES:
            raise ValueError(
                f"state: {state!r} is set by the scheduler; record your own step names "
                "(CALLING_AGENT, 'searching'...)"
            )
        await self._services.registry.transition(
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

    async def until_cancelled(
        self,
        work: Awaitable[T],
        *,
        on_cancel: Callable[[], object] | None = None,
        grace_seconds: float = 0.0,
    ) -> T:
        """Await ``work``, stopping it when this task is cancelled, whatever it is waiting
        on: ``on_cancel`` runs first (e.g. to signal the work to wind down), the work gets
        ``grace_seconds`` to end by itself, then it is cancelled and
        :class:`TaskCancelledError` is raised."""
        run = asyncio.ensure_future(work)
        cancelled = asyncio.ensure_future(self.cancel_event.wait())
        try:
            await asyncio.wait({run, cancelled}, return_when=asyncio.FIRST_COMPLETED)
            if run.done():
                return run.result()
            if on_cancel is not None:
                on_cancel()
            if grace_seconds > 0:
                await asyncio.wait({run}, timeout=grace_seconds)
        finally:
            # also when the handler itself is cancelled (a force cancel, a drain): the work
            # never outlives it
            cancelled.cancel()
            if not run.done():
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run
        raise TaskCancelledError(self.cancel_reason or "task cancelled")

    # -- other agents and the user -------------------------------------------------------

    def _child(
        self,
        target_agent_type: str,
        content: Content,
        *,
        wait: bool,
        payload: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        group_id: str = "",
    ) -> AskAgentCommand:
        if not isinstance(target_agent_type, str) or not target_agent_type:
            raise ConfigurationError(
                f"target_agent_type: expected an agent type, got {target_agent_type!r}"
            )
        if not (isinstance(content, str) and content.strip()) and not (
            isinstance(content, list) and content
        ):
            raise ConfigurationError(
                f"content: expected a non-empty string or list of message objects, got {content!r}"
            )
        if payload is not None and not isinstance(payload, dict):
            raise ConfigurationError(f"payload: expected a dict, got {type(payload).__name__}")
        depth = self.depth + 1
        limit = self._services.config.max_call_depth
        if depth > limit:
            raise LimitExceededError(
                f"call depth {depth} exceeds max_call_depth={limit} "
                f"({self.current_agent_id} → {target_agent_type}); is the call tree recursing?"
            )
        child_metadata = {**(metadata or {}), DEPTH_KEY: depth}
        with tracing.span(
            f"byway.call {target_agent_type}",
            {"byway.agent_type": self.current_agent_id, "byway.target": target_agent_type},
        ):
            tracing.inject(child_metadata)  # the callee's span is a child of this one
        return AskAgentCommand(
            header=MessageHeader(
                message_id=new_id("msg"),
                session_id=self.session_id,
                trace_id=self.trace_id,
                source_agent_type=self.current_agent_id if wait else "",
                target_agent_type=target_agent_type,
                parent_message_id=self.message_id,
                task_group_id=group_id,
                user_code=self.user_code,
                metadata=child_metadata,
            ),
            content=content,
            wait_for_reply=wait,
            extra_payload=dict(payload or {}),
        )

    def _claim_wait(self) -> None:
        if self.suspension is not None:
            raise ConfigurationError(
                "this task already waits for a reply; call several agents with "
                "dispatch_group(), or return and continue when resumed"
            )

    async def _require_online(self, agent_types: Sequence[str]) -> None:
        for agent_type in dict.fromkeys(agent_types):
            if await self._services.registry.find_online_worker(agent_type) is None:
                raise NoOnlineWorkerError(
                    f"target_agent_type: no online worker serves {agent_type!r}"
                )

    async def call_agent(
        self,
        target_agent_type: str,
        content: Content,
        wait_for_reply: bool = True,
        timeout: float | None = None,
        payload: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        extra_payload: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Ask another agent. With ``wait_for_reply`` this task suspends when the handler
        returns (its slot is freed) and ``process_command`` runs again, on any worker,
        with a :class:`ResumeCommand` carrying the callee's status, content and
        reply_data — or status ``TIMEOUT`` after ``timeout`` seconds. ``extra_payload``
        is by-framework's name for ``payload``.
        """
        if extra_payload is not None:
            if payload is not None:
                raise ConfigurationError("payload, extra_payload: give one of them, not both")
            payload = extra_payload
        command = self._child(
            target_agent_type, content, wait=wait_for_reply, payload=payload, metadata=metadata
        )
        await self._require_online([target_agent_type])
        await self._services.plugins.fire("on_call_agent_start", self, command)
        mid = command.header.message_id
        if not wait_for_reply:
            await self._services.flow.send(
                command, stream=self._services.keys.agent_stream(target_agent_type), root=False
            )
            return {"status": AgentState.QUEUED, "message_id": mid}
        self._claim_wait()
        self.suspension = Suspension(AgentState.WAITING_AGENT, timeout, [command])
        return {"status": AgentState.WAITING_AGENT, "message_id": mid}

    async def dispatch_group(
        self,
        tasks: Sequence[dict[str, Any]],
        wait_for_reply: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Fan out ``tasks`` (each ``{"target_agent_type", "content", "payload"?}``).

        With ``wait_for_reply`` this task suspends when the handler returns and resumes
        once, when every child has finished, with ``reply_data`` = the children's results
        in task order (each ``{"message_id", "target_agent_type", "status", "content",
        "reply_data", "error"?}``). Without, poll with :meth:`collect_group_results`.
        """
        if not isinstance(tasks, Sequence) or not tasks:
            raise ConfigurationError("tasks: expected a non-empty list of task dicts")
        limit = self._services.config.max_fanout
        if len(tasks) > limit:
            raise LimitExceededError(f"tasks: {len(tasks)} exceeds max_fanout={limit}")
        group_id = new_id("tg")
        children = []
        for i, task in enumerate(tasks):
            if not isinstance(task, dict) or "target_agent_type" not in task:
                raise ConfigurationError(
                    f"tasks[{i}]: expected a dict with target_agent_type and content, got {task!r}"
                )
            children.append(
                self._child(
                    task["target_agent_type"],
                    task.get("content", ""),
                    wait=wait_for_reply,
                    payload=task.get("payload", task.get("extra_payload")),
                    metadata=task.get("metadata"),
                    group_id=group_id,
                )
            )
        await self._require_online([c.header.target_agent_type for c in children])
        if self._services.plugins.has("on_call_agent_start"):
            for child in children:
                await self._services.plugins.fire("on_call_agent_start", self, child)
        dispatched = [
            {"message_id": c.header.message_id, "target_agent_type": c.header.target_agent_type}
            for c in children
        ]
        if wait_for_reply:
            self._claim_wait()
            self.suspension = Suspension(
                AgentState.WAITING_AGENT, timeout, children, group_id=group_id
            )
            status: str = AgentState.WAITING_AGENT
        else:
            await self._services.send_group(self, group_id, children, caller_waits=False)
            status = "GROUP_QUEUED"
        return {"status": status, "task_group_id": group_id, "dispatched_tasks": dispatched}

    async def collect_group_results(
        self, task_group_id: str, timeout: float = 30.0
    ) -> GroupResults:
        """The group's results in task order, polling until all are in or ``timeout``;
        children still running then are listed with status ``PENDING``.

        Called on the group this task was about to wait for (``dispatch_group`` with
        ``wait_for_reply`` in this same pass), it gathers in place instead: the children
        are sent now, the wait is dropped, and this task keeps its slot while it polls —
        what by-framework's README shows.
        """
        pending = self.suspension
        if pending is not None and pending.group_id and pending.group_id == task_group_id:
            self.suspension = None
            children = [
                msgspec.structs.replace(
                    child,
                    header=msgspec.structs.replace(child.header, source_agent_type=""),
                    wait_for_reply=False,
                )
                for child in pending.children
            ]
            await self._services.send_group(self, task_group_id, children, caller_waits=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            order, results = await self._services.flow.group_results(task_group_id)
            if (order and len(results) >= len(order)) or loop.time() >= deadline:
                return GroupResults(
                    results.get(mid, {"message_id": mid, "status": "PENDING"}) for mid in order
                )
            await asyncio.sleep(0.1)

    async def ask_user(
        self, event: AskUserEvent | str, timeout: float | None = None
    ) -> dict[str, Any]:
        """Ask the user; the question reaches the session's stream tagged with this task's
        message id when the handler returns, and the answer (``client.resume``) runs
        ``process_command`` again with a :class:`ResumeCommand`."""
        question = AskUserEvent(prompt=event) if isinstance(event, str) else event
        if not isinstance(question, AskUserEvent) or not question.prompt:
            raise ConfigurationError("event: expected an AskUserEvent or a non-empty prompt")
        self._claim_wait()
        self.suspension = Suspension(AgentState.WAITING_USER, timeout, question=question)
        return {"status": AgentState.WAITING_USER, "message_id": self.message_id}

    def encoded_state(self) -> bytes:
        data = msgspec.json.encode(self.state)
        if len(data) > MAX_STATE_BYTES:
            raise LimitExceededError(
                f"context.state: {len(data)} bytes exceeds {MAX_STATE_BYTES}; keep large data "
                "elsewhere and store a reference"
            )
        return data
