"""The Byai message types and their content codec, as by-framework's Byai SDK defines them.

A ``BaiYingMessage`` travels as an AskAgent's (or Resume's) ``content``: a list of
message objects, each ``{"role": "user", "content": "Hello"}`` or, with files and
resources, ``{"role": ..., "content": {"text": ..., "files": [...], "resources": [...]}}``
(camelCase field names, every field written). :func:`serialize_byai_content` turns the
objects into that shape; :func:`deserialize_byai_content` turns it back, validating each
field (a bad one raises :class:`~byway.errors.ProtocolError` naming it, e.g.
``$[0].content.files[0].fileId``). Content that is not a list of message objects (a
string, other lists) passes through both unchanged, as there.
"""

from __future__ import annotations

import enum
from typing import Any, Protocol, TypeAlias

import msgspec

from byway.errors import ProtocolError
from byway.protocol import (
    AskAgentCommand,
    Content,
    ResumeCommand,
    command_from_dict,
    command_to_dict,
)

__all__ = [
    "BaiYingMessage",
    "BaiYingMessageRole",
    "ByaiAskAgentCommand",
    "ByaiContent",
    "ByaiContentCodec",
    "ByaiResumeCommand",
    "ContentCodec",
    "MessageContent",
    "MessageFile",
    "Resource",
    "WireContent",
    "deserialize_byai_content",
    "serialize_byai_content",
]


class BaiYingMessageRole(enum.StrEnum):
    """Who speaks in a :class:`BaiYingMessage`."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL_CALL = "tool-call"
    TOOL_RESPONSE = "tool-response"
    RESPONSE_TO_SUB_AGENT = "response-to-sub-agent"


class MessageFile(msgspec.Struct, frozen=True):
    """A file a message carries (by reference: its URL)."""

    fileId: int
    fileUrl: str
    fileType: str
    fileName: str


class Resource(msgspec.Struct, frozen=True):
    """A resource a message refers to."""

    resourceId: str
    resourceName: str
    resourceType: str
    id: str | None = ""
    path: str | None = ""
    resourceDesc: str | None = ""
    resourceMetaData: dict[str, Any] | None = msgspec.field(default_factory=dict)


class MessageContent(msgspec.Struct, frozen=True):
    """A message's text with its files and resources."""

    text: str = ""
    files: list[MessageFile] = msgspec.field(default_factory=list)
    resources: list[Resource] = msgspec.field(default_factory=list)


class BaiYingMessage(msgspec.Struct, frozen=True):
    """One message: a role and plain text or :class:`MessageContent`."""

    role: BaiYingMessageRole
    content: str | MessageContent


#: what Byai handlers send and receive as content
ByaiContent: TypeAlias = str | BaiYingMessage | list[BaiYingMessage]
#: content as it travels (a command's ``content``)
WireContent: TypeAlias = Content


class ContentCodec(Protocol):
    """Turns domain content into wire content and back."""

    def serialize(self, content: Any) -> WireContent: ...

    def deserialize(self, content: WireContent) -> Any: ...


def _wire_message(message: BaiYingMessage) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(message)
    return out


def serialize_byai_content(content: Any) -> Any:
    """``content`` with every :class:`BaiYingMessage` in it as its wire object (a single
    message becomes a one-item list); anything else unchanged."""
    if isinstance(content, BaiYingMessage):
        return [_wire_message(content)]
    if isinstance(content, list):
        return [_wire_message(i) if isinstance(i, BaiYingMessage) else i for i in content]
    return content


def _is_wire_message(item: Any) -> bool:
    return isinstance(item, dict) and "role" in item and "content" in item


def deserialize_byai_content(content: Any) -> Any:
    """Wire content as Byai objects: a list whose items are all message objects becomes
    one :class:`BaiYingMessage` (one item) or a list of them; anything else is returned
    unchanged. Raises :class:`ProtocolError` naming the first field that does not fit."""
    if not isinstance(content, list) or not content:
        return content
    if not all(_is_wire_message(item) for item in content):
        return content
    try:
        messages = msgspec.convert(content, list[BaiYingMessage])
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"content: not a Byai message: {exc}") from None
    return messages[0] if len(messages) == 1 else messages


class ByaiContentCodec:
    """:class:`ContentCodec` of Byai messages."""

    def serialize(self, content: Any) -> WireContent:
        wire: WireContent = serialize_byai_content(content)
        return wire

    def deserialize(self, content: WireContent) -> Any:
        return deserialize_byai_content(content)


class ByaiAskAgentCommand(AskAgentCommand, kw_only=True):
    """An :class:`AskAgentCommand` whose content is decoded to Byai objects (what a
    :class:`~byway.byai_worker.ByaiWorker`'s handler receives)."""

    content: ByaiContent  # type: ignore[assignment]

    def to_command(self) -> AskAgentCommand:
        """The plain command, its content in the wire shape (what is sent)."""
        return AskAgentCommand(
            header=self.header,
            content=serialize_byai_content(self.content),
            wait_for_reply=self.wait_for_reply,
            extra_payload=dict(self.extra_payload),
        )

    def to_dict(self) -> dict[str, Any]:
        """The wire shape, ``{"action_type", "header", "body"}`` (content serialised)."""
        return command_to_dict(self.to_command())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ByaiAskAgentCommand:
        """The command a wire-shaped dict holds, checked and its content decoded."""
        plain = command_from_dict(data)
        if not isinstance(plain, AskAgentCommand):
            raise ProtocolError(f"action_type: expected ASK_AGENT, got {plain.action_type}")
        return cls(
            header=plain.header,
            content=deserialize_byai_content(plain.content),
            wait_for_reply=plain.wait_for_reply,
            extra_payload=plain.extra_payload,
        )


class ByaiResumeCommand(ResumeCommand, kw_only=True):
    """A :class:`ResumeCommand` whose content is decoded to Byai objects."""

    content: ByaiContent = ""  # type: ignore[assignment]

    def to_command(self) -> ResumeCommand:
        """The plain command, its content in the wire shape (what is sent)."""
        return ResumeCommand(
            header=self.header,
            content=serialize_byai_content(self.content),
            status=self.status,
            reply_data=self.reply_data,
            extra_payload=dict(self.extra_payload),
        )

    def to_dict(self) -> dict[str, Any]:
        """The wire shape, ``{"action_type", "header", "body"}`` (content serialised)."""
        return command_to_dict(self.to_command())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ByaiResumeCommand:
        """The command a wire-shaped dict holds, checked and its content decoded."""
        plain = command_from_dict(data)
        if not isinstance(plain, ResumeCommand):
            raise ProtocolError(f"action_type: expected RESUME, got {plain.action_type}")
        return cls(
            header=plain.header,
            content=deserialize_byai_content(plain.content),
            status=plain.status,
            reply_data=plain.reply_data,
            extra_payload=plain.extra_payload,
        )
