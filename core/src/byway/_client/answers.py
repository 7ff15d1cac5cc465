"""Answering a question a task asked (``ask_user``): ``resume``."""

from __future__ import annotations

import uuid
from typing import Any

from redis.exceptions import NoPermissionError

from byway._client.base import ClientBase
from byway._client.types import SendMessageResponse, checked_id, queued
from byway.answers import UNKNOWN, refusal_reason, resume_body
from byway.errors import ConfigurationError, ResumeRefusedError
from byway.protocol import AgentState, Command, MessageHeader, ResumeCommand, now_ms
from byway.store.send import ResumeArgs, resume

__all__ = ["Answers"]


class Answers(ClientBase):
    """``resume``: the answer, checked against the execution's record before it is sent."""

    async def resume(
        self,
        session_id: str,
        message_id: str,
        answer: Any,
        *,
        target_agent_type: str | None = None,
        status: str = AgentState.COMPLETED,
        reply_data: Any = None,
        extra_payload: dict[str, Any] | None = None,
        user_code: str = "",
    ) -> SendMessageResponse:
        """Answer the question (``ask_user``) the execution of ``message_id`` waits on.

        ``answer`` is any JSON value: text goes in the Resume's ``content`` (with
        ``reply_data`` if given); an object, list, number or boolean goes in
        ``reply_data`` (what the LangGraph and ADK adapters read first, e.g.
        ``{"decisions": [{"type": "approve"}]}``, or ``{interrupt_id: value, ...}`` to
        answer open interrupts or calls one by one), with its JSON text as ``content``.

        Raises :class:`ResumeRefusedError` unless the execution waits for the user's
        answer (``WAITING_USER``) and no other answer to this question went out before:
        an unknown message (or the wrong session), a task that finished, runs, or waits
        for another agent. Under key schema v1 with scripts the check and the write are
        one script; otherwise the check reads the record first, and an answer that still
        arrives too late is refused by the worker with an ``answer_refused`` event.
        """
        checked_id("session_id", session_id)
        checked_id("message_id", message_id)
        content, data = resume_body(answer, reply_data)
        record = await self.registry.get_execution_by_message(session_id, message_id)
        if record is None:
            raise ResumeRefusedError(
                refusal_reason(session_id, message_id, UNKNOWN), status=UNKNOWN
            )
        self._check_waiting(session_id, message_id, record.status)
        command = ResumeCommand(
            header=MessageHeader(
                message_id=message_id,
                session_id=session_id,
                trace_id=record.trace_id or uuid.uuid4().hex,
                target_agent_type=target_agent_type or record.target_agent_type,
                user_code=user_code,
            ),
            content=content,
            status=status,
            reply_data=data,
            extra_payload=dict(extra_payload or {}),
        )
        return await self._send_answer(await self._intercept(command))

    @staticmethod
    def _check_waiting(session_id: str, message_id: str, status: str) -> None:
        why = refusal_reason(session_id, message_id, status)
        if why:
            raise ResumeRefusedError(why, status=status)

    async def _send_answer(self, command: Command) -> SendMessageResponse:
        """Write an answer to its agent type's stream: with the RESUME script (schema v1),
        which checks again that the question is open in the same step, else as is."""
        header = command.header
        if not header.target_agent_type:
            raise ConfigurationError("target_agent_type: expected the agent type to answer")
        stream = self.keys.agent_stream(header.target_agent_type)
        data = self.flow.encode(command)
        now = now_ms()
        if self.keys.schema == "v1" and self.uses_scripts:
            try:
                reply = await resume(
                    self.redis,
                    ResumeArgs(
                        keyspace=self.keys,
                        session_id=header.session_id,
                        stream=stream,
                        message_id=header.message_id,
                        command=self.flow.seal(stream, data),
                        stream_maxlen=self.stream_maxlen,
                    ),
                )
            except NoPermissionError as exc:  # refused before it ran: nothing was written
                self._refuse_scripts(exc)
            else:
                if not reply.written:
                    self._check_waiting(header.session_id, header.message_id, reply.status)
                return queued(header, "", now, reply.entry_id)
        entry: Any = await self.redis.xadd(
            stream,
            {"data": self.flow.seal(stream, data)},
            maxlen=self.stream_maxlen or None,
            approximate=True,
        )
        return queued(header, "", now, entry.decode())
