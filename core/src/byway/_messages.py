"""The wire protocol's types (SPEC §5): enums, the header, commands, events, and what
handlers emit and return. :mod:`byway.protocol` exports them with their codecs."""

from __future__ import annotations

import enum
import time
import uuid
from typing import Any, TypeAlias

import msgspec

__all__ = [
    "TERMINAL_STATES",
    "ActionType",
    "AgentState",
    "AgentTaskResult",
    "ArtifactEvent",
    "AskAgentCommand",
    "AskUserEvent",
    "CancelMode",
    "CancelTaskCommand",
    "Command",
    "Content",
    "Event",
    "EventType",
    "JsonValue",
    "MessageHeader",
    "ReloadPluginsCommand",
    "ResumeCommand",
    "StateChangeEvent",
    "StreamChunkEvent",
    "is_terminal",
    "new_id",
    "now_ms",
]

JsonValue: TypeAlias = Any
#: A message's content: text, or a list of message/part objects.
Content: TypeAlias = str | list[dict[str, Any]]


class ActionType(enum.StrEnum):
    ASK_AGENT = "ASK_AGENT"
    RESUME = "RESUME"
    ASK_USER = "ASK_USER"
    CANCEL_TASK = "CANCEL_TASK"
    RELOAD_PLUGINS = "RELOAD_PLUGINS"


class AgentState(enum.StrEnum):
    STARTING = "STARTING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    CALLING_AGENT = "CALLING_AGENT"
    WAITING_AGENT = "WAITING_AGENT"
    WAITING_USER = "WAITING_USER"
    RESUMED = "RESUMED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


TERMINAL_STATES = frozenset({AgentState.COMPLETED, AgentState.FAILED, AgentState.CANCELLED})


def is_terminal(state: str) -> bool:
    """Whether ``state`` ends an execution (compared case-insensitively)."""
    return state.upper() in TERMINAL_STATES


class EventType(enum.StrEnum):
    ANSWER_DELTA = "answerDelta"
    REASONING_LOG_DELTA = "reasoningLogDelta"
    REASONING_LOG_START = "reasoningLogStart"
    REASONING_LOG_END = "reasoningLogEnd"
    FINAL_ANSWER = "finalAnswer"
    APP_STREAM_RESPONSE = "appStreamResponse"
    TASK_CREATE = "taskCreate"
    STEP_COMPLETE = "stepComplete"
    TASK_STOP = "taskStop"


class CancelMode(enum.StrEnum):
    GRACEFUL = "graceful"
    FORCE = "force"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_id(prefix: str) -> str:
    """A fresh id in the by-framework style: ``msg-<32 hex>``."""
    return f"{prefix}-{uuid.uuid4().hex}"


# -- header ------------------------------------------------------------------------------


class MessageHeader(msgspec.Struct, kw_only=True):
    """Routing and context carried by every command."""

    message_id: str
    session_id: str
    trace_id: str
    source_agent_type: str = ""
    target_agent_type: str = ""
    parent_message_id: str = ""
    task_group_id: str = ""
    user_code: str = ""
    user_name: str = ""
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


# -- commands (public, flat) -------------------------------------------------------------


class AskAgentCommand(msgspec.Struct, kw_only=True):
    """Run an agent on ``content``. ``header.source_agent_type`` set = the caller waits."""

    header: MessageHeader
    content: Content
    wait_for_reply: bool = False
    extra_payload: dict[str, Any] = msgspec.field(default_factory=dict)

    action_type = ActionType.ASK_AGENT


class ResumeCommand(msgspec.Struct, kw_only=True):
    """Resume a suspended execution with a reply (from a callee or the user)."""

    header: MessageHeader
    content: Content = ""
    status: str = ""
    reply_data: JsonValue = None
    extra_payload: dict[str, Any] = msgspec.field(default_factory=dict)

    action_type = ActionType.RESUME


class CancelTaskCommand(msgspec.Struct, kw_only=True):
    """Cancel a task (and, breadth-first, its descendants)."""

    header: MessageHeader
    target_message_id: str
    target_execution_id: str = ""
    target_worker_id: str = ""
    reason: str = ""
    requested_by: str = ""
    cancel_mode: CancelMode = CancelMode.GRACEFUL

    action_type = ActionType.CANCEL_TASK


class ReloadPluginsCommand(msgspec.Struct, kw_only=True):
    """Ask a worker to reload its plugin chain and acknowledge on the reload's stream."""

    header: MessageHeader
    reload_id: str
    reason: str = ""

    action_type = ActionType.RELOAD_PLUGINS


Command: TypeAlias = AskAgentCommand | ResumeCommand | CancelTaskCommand | ReloadPluginsCommand

# -- events ------------------------------------------------------------------------------


class Event(msgspec.Struct, kw_only=True):
    """One event on a session's data stream.

    ``id`` is the stream entry id the event was read at (not part of the JSON); pass it as
    ``after=`` to resume reading after a disconnect.
    """

    trace_id: str = ""
    session_id: str
    event_type: str
    source_agent_type: str = ""
    message_id: str = ""
    parent_message_id: str = ""
    timestamp: int = 0
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    id: str = ""

    @property
    def kind(self) -> str:
        """The ``data.kind`` discriminator (chunk, state, artifact, ask_user, final, end...)."""
        return str(self.data.get("kind", ""))

    @property
    def is_end(self) -> bool:
        return self.event_type == EventType.APP_STREAM_RESPONSE


# -- what handlers emit and return -------------------------------------------------------


class StreamChunkEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A piece of streamed output (a token, a tool call, a tool response)."""

    content: str | None = None
    role: str = "assistant"
    function_call: dict[str, Any] | None = None
    function_response: dict[str, Any] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_responses: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class StateChangeEvent(msgspec.Struct, frozen=True, kw_only=True):
    state: str
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class ArtifactEvent(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class AskUserEvent(msgspec.Struct, frozen=True, kw_only=True):
    prompt: str
    schema: dict[str, Any] | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class AgentTaskResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a handler returns; mirrors the Resume body a caller receives."""

    status: str = AgentState.COMPLETED
    content: Content = ""
    reply_data: JsonValue = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    extra_payload: dict[str, Any] = msgspec.field(default_factory=dict)
