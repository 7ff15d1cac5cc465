"""The wire protocol: enums, header, commands and events (SPEC §5).

Every stream entry has one field, ``data``, holding JSON. Commands travel as
``{"action_type": A, "header": H, "body": B}``; events as a flat object. Decoding
validates types and required fields and raises :class:`~byway.errors.ProtocolError`
naming the field (``$.header.trace_id``); unknown extra fields are tolerated so newer
peers can add fields. msgspec does the encoding and decoding (a few microseconds each).
"""

from __future__ import annotations

import enum
import re
import time
import uuid
from typing import Any, TypeAlias

import msgspec

from byway.errors import LimitExceededError, ProtocolError
from byway.limits import DEFAULT_MAX_COMMAND_BYTES, DEFAULT_MAX_DEPTH, MAX_ID_LENGTH

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
    "check_id",
    "decode_command",
    "decode_event",
    "encode_command",
    "encode_event",
    "is_terminal",
    "new_id",
    "now_ms",
    "utf8_safe",
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


def encode_command(command: Command, *, max_bytes: int | None = None) -> bytes:
    """The JSON of ``command`` as it goes in a stream entry's ``data`` field; with
    ``max_bytes``, :class:`LimitExceededError` (naming the largest field) past it."""
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
    try:
        data = _encoder.encode(wire)
    except UnicodeEncodeError:
        raise ProtocolError(
            "command: a string holds a lone surrogate (U+D800-U+DFFF), which UTF-8 cannot "
            "encode; decode text with errors='replace' or 'surrogatepass' first"
        ) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise LimitExceededError(
            f"command: {len(data):,} bytes is over max_command_bytes={max_bytes:,} "
            f"(BYWAY_MAX_COMMAND_BYTES); {_largest_field(wire)}"
        )
    return data


def _largest_field(wire: _Wire) -> str:
    sizes = {
        f"body.{name}": len(_encoder.encode(getattr(wire.body, name)))
        for name in wire.body.__struct_fields__
    }
    sizes["header.metadata"] = len(_encoder.encode(wire.header.metadata))
    name = max(sizes, key=sizes.__getitem__)
    return f"{name} is {sizes[name]:,} bytes"


def decode_command(
    data: bytes | str,
    *,
    max_bytes: int = DEFAULT_MAX_COMMAND_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    forbid_braces: bool = False,
) -> Command:
    """Decode and validate one command; :class:`ProtocolError` names the bad field.

    Nothing else can escape, whatever the bytes: not UTF-8, nested past ``max_depth``,
    over ``max_bytes``, ids that are too long or hold control characters (or braces, with
    ``forbid_braces``: key schema v2 puts ids in hash tags).
    """
    try:
        raw = _as_bytes(data, max_bytes, "command")
        wire = _decode_bounded(_command_decoder, raw, max_depth, "command")
        return _command_of(wire, forbid_braces)
    except ProtocolError:
        raise
    except Exception as exc:  # whatever else a hostile entry provokes is still its fault
        raise ProtocolError(f"invalid command: {_brief(exc)}") from None


def _command_of(wire: _Wire, forbid_braces: bool) -> Command:
    header = wire.header
    for name in ("message_id", "session_id", "trace_id"):
        if not getattr(header, name):
            raise ProtocolError(f"invalid command: `$.header.{name}` must be non-empty")
    for name in _HEADER_IDS:
        _check_wire_id(f"$.header.{name}", getattr(header, name), forbid_braces)
    if len(header.user_name) > MAX_ID_LENGTH:
        raise ProtocolError(f"invalid command: `$.header.user_name` is over {MAX_ID_LENGTH} chars")
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
        for name in ("target_message_id", "target_execution_id", "target_worker_id"):
            _check_wire_id(f"$.body.{name}", getattr(c, name), forbid_braces)
        return CancelTaskCommand(
            header=header,
            target_message_id=c.target_message_id,
            target_execution_id=c.target_execution_id,
            target_worker_id=c.target_worker_id,
            reason=c.reason[:_REASON_MAX],
            requested_by=c.requested_by[:MAX_ID_LENGTH],
            cancel_mode=c.cancel_mode,
        )
    _check_wire_id("$.body.reload_id", wire.body.reload_id, True)
    if not wire.body.reload_id:
        raise ProtocolError("invalid command: `$.body.reload_id` must be non-empty")
    return ReloadPluginsCommand(
        header=header, reload_id=wire.body.reload_id, reason=wire.body.reason[:_REASON_MAX]
    )


#: header fields that are ids (they name keys, fields and log lines)
_HEADER_IDS = (
    "message_id",
    "session_id",
    "trace_id",
    "source_agent_type",
    "target_agent_type",
    "parent_message_id",
    "task_group_id",
    "user_code",
)
#: longest cancel/reload reason kept
_REASON_MAX = 1000
_SURROGATE = re.compile("[\ud800-\udfff]")
#: C0 and C1 control characters, DEL, and the Unicode line and paragraph separators
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_id(field: str, value: object, *, forbid_braces: bool = False) -> str:
    """``value`` if it is a usable id: a string of 1 to 256 characters with no control
    characters (and no braces with ``forbid_braces``), else :class:`ProtocolError` naming
    ``field``."""
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{field}: expected a non-empty string, got {_shown(value)}")
    _check_wire_id(field, value, forbid_braces)
    return value


def _check_wire_id(field: str, value: str, forbid_braces: bool) -> None:
    if not value:
        return
    if len(value) > MAX_ID_LENGTH:
        raise ProtocolError(f"{field}: expected at most {MAX_ID_LENGTH} characters, "
                            f"got {len(value)}")  # fmt: skip
    if _CONTROL.search(value):
        raise ProtocolError(f"{field}: must not contain control characters, got {_shown(value)}")
    if forbid_braces and ("{" in value or "}" in value):
        raise ProtocolError(
            f"{field}: must not contain braces (key schema v2 puts ids in hash tags), "
            f"got {_shown(value)}"
        )
    if not value.strip():
        raise ProtocolError(f"{field}: must not be blank")


def _shown(value: object, limit: int = 80) -> str:
    """A bounded, escaped rendering of a wire value for an error message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _brief(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + "..."


def _as_bytes(data: object, max_bytes: int, what: str) -> bytes:
    if isinstance(data, str):
        try:
            data = data.encode()
        except UnicodeEncodeError as exc:
            raise ProtocolError(f"invalid {what}: not UTF-8 ({_brief(exc, 120)})") from None
    elif isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise ProtocolError(f"invalid {what}: expected JSON bytes, got {type(data).__name__}")
    if not data:
        raise ProtocolError(f"invalid {what}: the entry has no `data` field (or it is empty)")
    if len(data) > max_bytes:
        raise ProtocolError(
            f"invalid {what}: {len(data)} bytes is over the limit of {max_bytes} "
            "(BYWAY_MAX_COMMAND_BYTES)"
        )
    return data


def _decode_bounded(
    decoder: msgspec.json.Decoder[Any], raw: bytes, max_depth: int, what: str
) -> Any:
    # fewer brackets than the limit: it cannot nest deeper (one scan in C)
    shallow = raw.count(b"[") + raw.count(b"{") <= max_depth
    try:
        value = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid {what}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"invalid {what}: not JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"invalid {what}: not UTF-8 (byte {raw[exc.start]:#04x} at {exc.start})"
        ) from None
    except RecursionError:
        raise ProtocolError(f"invalid {what}: nested deeper than {max_depth} levels") from None
    if not shallow and _depth(value) > max_depth:
        raise ProtocolError(f"invalid {what}: nested deeper than {max_depth} levels")
    return value


def _depth(value: Any) -> int:
    """How deep arrays, objects and structs nest in ``value`` (iterative: no recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, msgspec.Struct):
            children: Any = [getattr(item, f) for f in item.__struct_fields__]
        elif isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


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
    """The JSON of one event. Text a handler produced with a lone surrogate (which UTF-8
    cannot hold) is written with U+FFFD in its place rather than failing the task."""
    wire = _EventWire(
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
    try:
        return _encoder.encode(wire)
    except UnicodeEncodeError:
        wire.data, wire.metadata = _scrub(data), _scrub(metadata or {})
        return _encoder.encode(wire)


def decode_event(
    data: bytes | str,
    entry_id: str = "",
    *,
    max_bytes: int = DEFAULT_MAX_COMMAND_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Event:
    """Decode one session-stream event; :class:`ProtocolError` is all it can raise."""
    try:
        raw = _as_bytes(data, max_bytes, "event")
        event: Event = _decode_bounded(_event_decoder, raw, max_depth, "event")
    except ProtocolError:
        raise
    except Exception as exc:  # a crafted entry must not break a reader
        raise ProtocolError(f"invalid event: {_brief(exc)}") from None
    event.id = entry_id
    return event


def utf8_safe(result: AgentTaskResult) -> AgentTaskResult:
    """``result``, or a copy whose lone surrogates (text UTF-8 cannot hold, e.g. from
    ``errors='surrogateescape'`` decoding) are U+FFFD, so that it can be written."""
    try:
        _encoder.encode(result)
    except UnicodeEncodeError:
        return msgspec.structs.replace(
            result,
            content=_scrub(result.content),
            reply_data=_scrub(result.reply_data),
            metadata=_scrub(result.metadata),
            extra_payload=_scrub(result.extra_payload),
        )
    return result


def _scrub(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


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
