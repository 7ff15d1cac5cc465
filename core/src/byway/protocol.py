"""The wire protocol: enums, header, commands and events (SPEC §5).

Every stream entry has one field, ``data``, holding JSON. Commands travel as
``{"action_type": A, "header": H, "body": B}``; events as a flat object. Decoding
validates types and required fields and raises :class:`~byway.errors.ProtocolError`
naming the field (``$.header.trace_id``); unknown extra fields are tolerated so newer
peers can add fields. msgspec does the encoding and decoding (a few microseconds each).
"""

from __future__ import annotations

import enum
import time
import uuid
from typing import Any, TypeAlias

import msgspec

from byway.errors import ProtocolError

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
    "MessageHeader",
    "ReloadPluginsCommand",
    "ResumeCommand",
    "StateChangeEvent",
    "StreamChunkEvent",
    "decode_command",
    "decode_event",
    "encode_command",
    "encode_event",
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


# -- commands (wire, nested) -------------------------------------------------------------


class _AskBody(msgspec.Struct):
    content: Content
    wait_for_reply: bool = False
    extra_payload: dict[str, Any] = msgspec.field(default_factory=dict)


class _ResumeBody(msgspec.Struct):
    content: Content = ""
    status: str = ""
    reply_data: JsonValue = None
    extra_payload: dict[str, Any] = msgspec.field(default_factory=dict)


class _CancelBody(msgspec.Struct):
    target_message_id: str
    target_execution_id: str = ""
    target_worker_id: str = ""
    reason: str = ""
    requested_by: str = ""
    cancel_mode: CancelMode = CancelMode.GRACEFUL


class _ReloadBody(msgspec.Struct):
    reload_id: str
    reason: str = ""


class _AskWire(msgspec.Struct, tag="ASK_AGENT", tag_field="action_type"):
    header: MessageHeader
    body: _AskBody


class _ResumeWire(msgspec.Struct, tag="RESUME", tag_field="action_type"):
    header: MessageHeader
    body: _ResumeBody


class _CancelWire(msgspec.Struct, tag="CANCEL_TASK", tag_field="action_type"):
    header: MessageHeader
    body: _CancelBody


class _ReloadWire(msgspec.Struct, tag="RELOAD_PLUGINS", tag_field="action_type"):
    header: MessageHeader
    body: _ReloadBody


_Wire: TypeAlias = _AskWire | _ResumeWire | _CancelWire | _ReloadWire
_command_decoder = msgspec.json.Decoder(_Wire)
_encoder = msgspec.json.Encoder()


def _content_ok(content: Content) -> bool:
    return bool(content.strip()) if isinstance(content, str) else len(content) > 0


def encode_command(command: Command) -> bytes:
    """The JSON of ``command`` as it goes in a stream entry's ``data`` field."""
    wire: _Wire
    if isinstance(command, AskAgentCommand):
        if not _content_ok(command.content):
            raise ProtocolError("body.content: expected a non-empty string or list, got empty")
        wire = _AskWire(
            command.header,
            _AskBody(command.content, command.wait_for_reply, command.extra_payload),
        )
    elif isinstance(command, ResumeCommand):
        wire = _ResumeWire(
            command.header,
            _ResumeBody(command.content, command.status, command.reply_data, command.extra_payload),
        )
    elif isinstance(command, CancelTaskCommand):
        if not command.target_message_id:
            raise ProtocolError("body.target_message_id: expected a non-empty string")
        wire = _CancelWire(
            command.header,
            _CancelBody(
                command.target_message_id,
                command.target_execution_id,
                command.target_worker_id,
                command.reason,
                command.requested_by,
                command.cancel_mode,
            ),
        )
    elif isinstance(command, ReloadPluginsCommand):
        wire = _ReloadWire(command.header, _ReloadBody(command.reload_id, command.reason))
    else:
        raise ProtocolError(f"command: expected a Byway command, got {type(command).__name__}")
    return _encoder.encode(wire)


def decode_command(data: bytes | str) -> Command:
    """Decode and validate one command; :class:`ProtocolError` names the bad field."""
    try:
        wire = _command_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid command: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"invalid command: not JSON ({exc})") from None
    header = wire.header
    for name in ("message_id", "session_id", "trace_id"):
        if not getattr(header, name):
            raise ProtocolError(f"invalid command: `$.header.{name}` must be non-empty")
    if isinstance(wire, _AskWire):
        body = wire.body
        if not _content_ok(body.content):
            raise ProtocolError("invalid command: `$.body.content` must be non-empty")
        return AskAgentCommand(
            header=header,
            content=body.content,
            wait_for_reply=body.wait_for_reply,
            extra_payload=body.extra_payload,
        )
    if isinstance(wire, _ResumeWire):
        r = wire.body
        return ResumeCommand(
            header=header,
            content=r.content,
            status=r.status,
            reply_data=r.reply_data,
            extra_payload=r.extra_payload,
        )
    if isinstance(wire, _CancelWire):
        c = wire.body
        if not c.target_message_id:
            raise ProtocolError("invalid command: `$.body.target_message_id` must be non-empty")
        return CancelTaskCommand(
            header=header,
            target_message_id=c.target_message_id,
            target_execution_id=c.target_execution_id,
            target_worker_id=c.target_worker_id,
            reason=c.reason,
            requested_by=c.requested_by,
            cancel_mode=c.cancel_mode,
        )
    return ReloadPluginsCommand(
        header=header, reload_id=wire.body.reload_id, reason=wire.body.reason
    )


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


class _EventWire(msgspec.Struct):
    trace_id: str
    session_id: str
    event_type: str
    source_agent_type: str
    message_id: str
    parent_message_id: str
    timestamp: int
    data: dict[str, Any]
    metadata: dict[str, Any]


_event_decoder = msgspec.json.Decoder(Event)


def encode_event(
    *,
    trace_id: str,
    session_id: str,
    event_type: str,
    source_agent_type: str,
    message_id: str,
    parent_message_id: str,
    data: dict[str, Any],
    metadata: dict[str, Any] | None = None,
    timestamp: int | None = None,
) -> bytes:
    return _encoder.encode(
        _EventWire(
            trace_id,
            session_id,
            event_type,
            source_agent_type,
            message_id,
            parent_message_id,
            now_ms() if timestamp is None else timestamp,
            data,
            metadata or {},
        )
    )


def decode_event(data: bytes | str, entry_id: str = "") -> Event:
    try:
        event = _event_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ProtocolError(f"invalid event: {exc}") from None
    event.id = entry_id
    return event


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
