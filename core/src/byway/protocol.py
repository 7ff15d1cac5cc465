"""The wire protocol: enums, header, commands and events (SPEC §5).

Every stream entry has one field, ``data``, holding JSON. Commands travel as
``{"action_type": A, "header": H, "body": B}``; events as a flat object. Decoding
validates types and required fields and raises :class:`~byway.errors.ProtocolError`
naming the field (``$.header.trace_id``); unknown extra fields are tolerated so newer
peers can add fields. msgspec does the encoding and decoding (a few microseconds each).

This module holds the codecs; the types are defined in :mod:`byway._messages` and the
input guards in :mod:`byway._guards`, and every name is imported from here.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec

from byway._guards import as_bytes, brief, check_id, check_wire_id, decode_bounded, scrub
from byway._messages import (
    TERMINAL_STATES,
    ActionType,
    AgentState,
    AgentTaskResult,
    ArtifactEvent,
    AskAgentCommand,
    AskUserEvent,
    CancelMode,
    CancelTaskCommand,
    Command,
    Content,
    Event,
    EventType,
    JsonValue,
    MessageHeader,
    ReloadPluginsCommand,
    ResumeCommand,
    StateChangeEvent,
    StreamChunkEvent,
    is_terminal,
    new_id,
    now_ms,
)
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
    "command_from_dict",
    "command_to_dict",
    "decode_command",
    "decode_event",
    "encode_command",
    "encode_event",
    "is_terminal",
    "new_id",
    "now_ms",
    "utf8_safe",
]


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
        raw = as_bytes(data, max_bytes, "command")
        wire = decode_bounded(_command_decoder, raw, max_depth, "command")
        return _command_of(wire, forbid_braces)
    except ProtocolError:
        raise
    except Exception as exc:  # whatever else a hostile entry provokes is still its fault
        raise ProtocolError(f"invalid command: {brief(exc)}") from None


def command_to_dict(command: Command) -> dict[str, Any]:
    """``command`` in its wire shape, ``{"action_type", "header", "body"}`` (by-framework's
    ``to_dict``)."""
    result: dict[str, Any] = msgspec.json.decode(encode_command(command))
    return result


def command_from_dict(data: dict[str, Any], **limits: Any) -> Command:
    """The command a wire-shaped dict holds, checked as :func:`decode_command` checks a
    stream entry (``limits``: its ``max_bytes``, ``max_depth``, ``forbid_braces``)."""
    if not isinstance(data, dict):
        raise ProtocolError(f"command: expected an object, got {type(data).__name__}")
    try:
        raw = _encoder.encode(data)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise ProtocolError(f"command: not JSON: {brief(exc)}") from None
    return decode_command(raw, **limits)


def _command_of(wire: _Wire, forbid_braces: bool) -> Command:
    header = wire.header
    for name in ("message_id", "session_id", "trace_id"):
        if not getattr(header, name):
            raise ProtocolError(f"invalid command: `$.header.{name}` must be non-empty")
    for name in _HEADER_IDS:
        check_wire_id(f"$.header.{name}", getattr(header, name), forbid_braces)
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
            check_wire_id(f"$.body.{name}", getattr(c, name), forbid_braces)
        return CancelTaskCommand(
            header=header,
            target_message_id=c.target_message_id,
            target_execution_id=c.target_execution_id,
            target_worker_id=c.target_worker_id,
            reason=c.reason[:_REASON_MAX],
            requested_by=c.requested_by[:MAX_ID_LENGTH],
            cancel_mode=c.cancel_mode,
        )
    check_wire_id("$.body.reload_id", wire.body.reload_id, True)
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


# -- events ------------------------------------------------------------------------------


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
        wire.data, wire.metadata = scrub(data), scrub(metadata or {})
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
        raw = as_bytes(data, max_bytes, "event")
        event: Event = decode_bounded(_event_decoder, raw, max_depth, "event")
    except ProtocolError:
        raise
    except Exception as exc:  # a crafted entry must not break a reader
        raise ProtocolError(f"invalid event: {brief(exc)}") from None
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
            content=scrub(result.content),
            reply_data=scrub(result.reply_data),
            metadata=scrub(result.metadata),
            extra_payload=scrub(result.extra_payload),
        )
    return result
