"""Answers to questions (``ask_user``): the Resume body an answer becomes, whether the
task still waits for one, and the event that tells a session an answer was not taken.

An answer is any JSON value. Text travels in the Resume body's ``content``; anything else
(an object, a list, a number, a boolean) in ``reply_data``, which the adapters read
first, with ``content`` a readable JSON text of it for handlers and logs that want text.

Only a task that is ``WAITING_USER`` expects an answer. The client refuses any other
(:class:`~byway.errors.ResumeRefusedError`), atomically with the write when it runs
scripts under key schema v1. What still reaches a worker unwanted (an answer that lost a
race with a cancel or a deadline, one written by another client, one that does not
decode) is not dropped in silence: the worker writes an ``answer_refused`` event to the
session, naming the message and why.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from byway.errors import ConfigurationError, ProtocolError
from byway.flow import WAIT_ID_KEY
from byway.keys import Keys
from byway.protocol import AgentState, MessageHeader, check_id, encode_event, is_terminal
from byway.registry import WorkerRegistry

__all__ = [
    "ANSWERED",
    "UNKNOWN",
    "AnswerNotices",
    "answer_refused_data",
    "is_agents_reply",
    "loose_resume_header",
    "refusal_reason",
    "resume_body",
]

#: status the RESUME script reports for a question another answer already took
ANSWERED = "ANSWERED"
#: status of a message the session has no execution of
UNKNOWN = "UNKNOWN"


def resume_body(answer: Any, reply_data: Any = None) -> tuple[str, Any]:
    """``(content, reply_data)`` of the Resume that carries ``answer``.

    Text stays text (with ``reply_data`` as given); any other JSON value goes in
    ``reply_data`` and its compact JSON text in ``content``."""
    if isinstance(answer, str):
        return answer, reply_data
    if reply_data is not None:
        raise ConfigurationError(
            "reply_data: give it only with a text answer; a structured answer "
            f"({type(answer).__name__}) is sent as the reply_data itself"
        )
    try:
        text = json.dumps(answer, ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"answer: expected text or a JSON value (object, list, number, boolean), got "
            f"{type(answer).__name__} ({exc})"
        ) from None
    return text, answer


def refusal_reason(session_id: str, message_id: str, status: str) -> str:
    """Why an answer to ``message_id`` is refused when its execution is ``status``
    ("" when it waits for the user and takes it)."""
    where = f"message_id: {message_id!r} in session {session_id!r}"
    if status == AgentState.WAITING_USER:
        return ""
    if status == UNKNOWN:
        return (
            f"message_id: no execution of {message_id!r} in session {session_id!r} "
            "(a wrong session or message id, or its record expired)"
        )
    if status == ANSWERED:
        return f"{where} was answered already; its next question, if any, comes as an event"
    if is_terminal(status):
        return f"{where} already finished with status {status}: no question is open"
    if status == AgentState.WAITING_AGENT:
        return f"{where} waits for an agent it called, not for an answer from a user"
    return (
        f"{where} is {status} and has no open question (it was answered already, or the "
        "task has not asked yet): answer once its ask_user event arrives"
    )


def answer_refused_data(message_id: str, status: str, reason: str) -> dict[str, Any]:
    """The ``data`` of an ``answer_refused`` event: ``waiting`` says whether the task
    still waits for an answer (then another answer may be sent)."""
    return {
        "kind": "answer_refused",
        "message_id": message_id,
        "status": status,
        "waiting": status == AgentState.WAITING_USER,
        "reason": reason,
    }


class AnswerNotices:
    """What a worker tells a session about a user's answer that no task took."""

    def __init__(self, registry: WorkerRegistry, keys: Keys, *, maxlen: int, ttl_s: int) -> None:
        self.registry = registry
        self.keys = keys
        self.maxlen = maxlen
        self.ttl_s = ttl_s

    async def not_taken(
        self, header: MessageHeader, entry_id: str, verdict: str, status: str, agent_type: str
    ) -> None:
        """START found no wait for this Resume (``stale``) or its task ended (``done``):
        if it is a user's answer, and not the redelivery of the answer that ran, say so."""
        if is_agents_reply(header.parent_message_id, header.task_group_id, header.metadata):
            return
        if verdict == "done":
            try:
                record = await self.registry.get_execution_by_message(
                    header.session_id, header.message_id
                )
            except (msgspec.DecodeError, ValueError):
                return  # a record no one can read: rather no notice than a false one
            if record is None or record.redis_message_id == entry_id:
                return  # this very answer ran the task to its end: a redelivery
        elif verdict != "stale":
            return
        why = refusal_reason(header.session_id, header.message_id, status)
        await self._tell(header, status, f"the answer was not taken: {why}", agent_type)

    async def unreadable(self, data: bytes, max_bytes: int, error: str, agent_type: str) -> None:
        """A user's Resume that did not decode was dead-lettered: its session hears why."""
        header = loose_resume_header(data, max_bytes)
        if header is None:
            return
        record = await self.registry.get_execution_by_message(header.session_id, header.message_id)
        status = record.status if record else UNKNOWN
        if record is not None and status == AgentState.WAITING_USER:
            # the RESUME script marked the question answered when it wrote this answer;
            # the question is still open, so the next answer must not be refused
            await self.registry.redis.hdel(
                self.keys.session_registry(header.session_id), f"answered:{record.execution_id}"
            )
        reason = f"the answer could not be read ({error}); it was dead-lettered"
        await self._tell(header, status, reason, agent_type)

    async def _tell(self, header: MessageHeader, status: str, reason: str, agent: str) -> None:
        """Write an ``answer_refused`` event (``stepComplete``) to the answer's session."""
        stream = self.keys.session_stream(header.session_id)
        payload = encode_event(
            trace_id=header.trace_id,
            session_id=header.session_id,
            event_type="stepComplete",
            source_agent_type=agent,
            message_id=header.message_id,
            parent_message_id="",
            data=answer_refused_data(header.message_id, status, reason[:1000]),
        )
        async with self.registry.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(stream, {"data": payload}, maxlen=self.maxlen, approximate=True)
            pipe.expire(stream, self.ttl_s)
            await pipe.execute()


def is_agents_reply(parent_message_id: str, task_group_id: str, metadata: dict[str, Any]) -> bool:
    """Whether a Resume comes from another agent, a task group or a deadline (not a user)."""
    return bool(parent_message_id or task_group_id or WAIT_ID_KEY in metadata)


class _LooseHeader(msgspec.Struct):
    message_id: str
    session_id: str
    trace_id: str = ""
    parent_message_id: str = ""
    task_group_id: str = ""
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class _LooseResume(msgspec.Struct):
    action_type: str
    header: _LooseHeader


_loose = msgspec.json.Decoder(_LooseResume)


def loose_resume_header(data: bytes, max_bytes: int) -> MessageHeader | None:
    """The header of a user's Resume whose body did not decode (a dict as ``content``, a
    wrong type): enough to tell its session. None for anything else, or when the header
    is unusable too (then only the dead letter records it)."""
    if not data or len(data) > max_bytes:
        return None
    try:
        wire = _loose.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    h = wire.header
    if wire.action_type != "RESUME" or is_agents_reply(
        h.parent_message_id, h.task_group_id, h.metadata
    ):
        return None
    try:  # ids from the wire name keys: check them
        check_id("message_id", h.message_id, forbid_braces=True)
        check_id("session_id", h.session_id, forbid_braces=True)
    except ProtocolError:
        return None
    return MessageHeader(
        message_id=h.message_id, session_id=h.session_id, trace_id=h.trace_id[:256]
    )
