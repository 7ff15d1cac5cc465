"""What :class:`~byway.client.GatewayClient` returns and checks: the send response,
reload acknowledgements, interceptors, and the checks of what a caller passes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import msgspec

from byway._guards import SURROGATE
from byway.errors import ConfigurationError, NoOnlineWorkerError, ProtocolError, SessionBusyError
from byway.flow import CancelOutcome
from byway.protocol import AgentState, CancelMode, Command, Content, MessageHeader, check_id

__all__ = [
    "CancelTaskResponse",
    "ClientInterceptor",
    "ReloadAck",
    "RoutePolicy",
    "SendMessageResponse",
    "checked_content",
    "checked_id",
    "checked_mode",
    "queued",
]


class ClientInterceptor(Protocol):
    """Sees (and may replace) every command before it is written to Redis."""

    async def before_send(self, command: Command) -> Command: ...


class RoutePolicy:
    """by-framework's routing policies, as ``send_message(route_policy=...)`` takes them."""

    FAIL_FAST = "FAIL_FAST"  # refuse unless a live worker serves the agent type
    SEND_ANYWAY = "SEND_ANYWAY"  # queue it; a worker that starts later takes it
    QUEUE_ONLY = "QUEUE_ONLY"  # the same in Byway
    WAKE_AND_WAIT = "WAKE_AND_WAIT"  # refused: Byway starts no workers
    WAKE_AND_QUEUE = "WAKE_AND_QUEUE"  # refused, as above
    ACCEPTED = (FAIL_FAST, SEND_ANYWAY, QUEUE_ONLY)


class ReloadAck(msgspec.Struct, kw_only=True):
    """One worker's answer to :meth:`GatewayClient.reload_plugins`."""

    worker_id: str
    status: str  # "ok" | "error"
    version_before: str = ""
    version_after: str = ""
    error: str = ""
    timestamp: int = 0


@dataclass(frozen=True, slots=True)
class SendMessageResponse:
    """What ``send_message`` and ``send_command`` return.

    ``success`` is False when routing refused the message (``error_code`` says why:
    ``AGENT_TYPE_UNAVAILABLE`` or ``WORKER_NOT_ONLINE``); call :meth:`raise_for_status`
    to turn that into an exception.
    """

    success: bool
    message_id: str
    trace_id: str
    session_id: str
    target_worker_id: str
    timestamp: int
    status: str
    execution_id: str = ""
    stream_entry_id: str = ""
    error: str = ""
    error_code: str = ""
    #: sent | queued (waits for the session's running task) | interrupt
    disposition: str = ""
    #: queued or interrupt: the message id of the session's task this one waits behind
    queued_behind: str = ""

    def raise_for_status(self) -> SendMessageResponse:
        if not self.success:
            if self.error_code == "SESSION_BUSY":
                raise SessionBusyError(self.error)
            raise NoOnlineWorkerError(self.error)
        return self


@dataclass(slots=True)
class CancelTaskResponse(CancelOutcome):
    """What ``cancel_task`` returns: the :class:`~byway.flow.CancelOutcome` (``items``,
    ``count``, ``message_ids``) with by-framework's response fields beside it.

    ``status`` is ``CANCEL_REQUESTED`` when the cancel reached a task that had not ended
    (``cancelled_count`` of them), else ``ALREADY_FINISHED`` with ``success`` False.
    """

    success: bool = False
    message_id: str = ""
    execution_id: str = ""
    worker_id: str = ""
    status: str = ""
    timestamp: int = 0
    error: str = ""
    cancelled_count: int = 0


def checked_id(field: str, value: object) -> str:
    """An id a client may send: 1-256 characters, no control characters, no braces (so the
    same ids work under both key schemas)."""
    try:
        return check_id(field, value, forbid_braces=True)
    except ProtocolError as exc:
        raise ConfigurationError(str(exc)) from None


def checked_mode(value: CancelMode | str) -> CancelMode:
    try:
        return CancelMode(value)
    except ValueError:
        raise ConfigurationError(
            f"cancel_mode: expected 'graceful' or 'force', got {value!r}"
        ) from None


def checked_content(content: object) -> Content:
    if isinstance(content, str) and content.strip():
        if SURROGATE.search(content):
            raise ConfigurationError(
                "content: holds a lone surrogate (U+D800-U+DFFF), which UTF-8 cannot encode; "
                "decode the text with errors='replace' first"
            )
        return content
    if isinstance(content, list) and content and all(isinstance(i, dict) for i in content):
        return content
    raise ConfigurationError(
        "content: expected a non-empty string or a non-empty list of message objects, "
        f"got {content!r}"
    )


def queued(
    header: MessageHeader,
    worker: str,
    now: int,
    entry_id: str,
    execution_id: str = "",
    disposition: str = "sent",
    queued_behind: str = "",
) -> SendMessageResponse:
    """The response to a command that was written (queued for a worker)."""
    return SendMessageResponse(
        success=True,
        message_id=header.message_id,
        trace_id=header.trace_id,
        session_id=header.session_id,
        target_worker_id=worker,
        timestamp=now,
        status=AgentState.QUEUED,
        execution_id=execution_id,
        stream_entry_id=entry_id,
        disposition=disposition,
        queued_behind=queued_behind,
    )
