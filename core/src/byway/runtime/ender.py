"""How a task ends: finished (its record, its final events or its caller's reply, the
XACK: one end write, batched with others by :mod:`byway.runtime.ends`) or suspended (the
wait recorded, then what it waits for sent, then the XACK; SPEC §6)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import msgspec

from byway import events, tracing
from byway._log import get_logger
from byway.errors import LimitExceededError, ProtocolError
from byway.history import HistoryEntry
from byway.protocol import (
    AgentState,
    AgentTaskResult,
    EventType,
    decode_command,
    decode_event,
    encode_event,
    new_id,
    now_ms,
)
from byway.runtime.ends import EndBatcher
from byway.runtime.endwrite import EndWrite
from byway.runtime.services import WorkerServices
from byway.runtime.slots import Running
from byway.store.finish import FinishArgs, SuspendArgs, Suspended, suspend
from byway.store.script import execute

__all__ = ["Ender"]

log = get_logger("byway.worker")
_json = msgspec.json.Encoder()


class Ender:
    """Ends tasks (finish, suspend) and counts how they ended."""

    def __init__(self, services: WorkerServices, ends: EndBatcher) -> None:
        self.services = services
        self.ends = ends
        #: tasks this runner ended, by how they ended (the stop summary)
        self.completed = 0
        self.failed = 0
        self.cancelled = 0

    async def suspend(self, running: Running) -> None:
        """Record the wait, then send what it waits for, then acknowledge (SPEC §6)."""
        s, ctx = self.services, running.context
        history = s.history
        suspension = ctx.suspension
        assert suspension is not None
        try:
            state = ctx.encoded_state()
        except LimitExceededError as exc:
            await self.finish(
                running,
                AgentTaskResult(status=AgentState.FAILED, content=str(exc)),
                {"type": type(exc).__name__, "message": str(exc)},
            )
            return
        now = now_ms()
        deadline = now + int(suspension.timeout * 1000) if suspension.timeout else 0
        wait: dict[str, Any] = {"wait_id": new_id("wait"), "deadline": deadline}
        detail: dict[str, Any] = {}
        if suspension.group_id:
            wait["group_id"] = detail["group_id"] = suspension.group_id
        if suspension.children:
            wait["children"] = detail["waiting_for"] = suspension.child_ids
        event = b""
        if suspension.question is not None:
            event = encode_event(
                trace_id=ctx.trace_id,
                session_id=ctx.session_id,
                event_type=EventType.TASK_STOP,
                source_agent_type=ctx.current_agent_id,
                message_id=ctx.message_id,
                parent_message_id=ctx.parent_message_id,
                data=events.ask_user_data(suspension.question),
            )
            detail["question"] = suspension.question.prompt[:200]
        verdict = await suspend(
            s.redis,
            SuspendArgs(
                keyspace=s.keys,
                session_id=ctx.session_id,
                execution_id=ctx.execution_id,
                message_id=ctx.message_id,
                status=suspension.status,
                now_ms=now,
                worker_id=s.worker_id,
                wait=_json.encode(wait),
                state=state,
                detail=_json.encode(detail),
                event=event,
                stream_maxlen=s.config.session_stream_maxlen,
                ttl_s=s.config.session_ttl_seconds,
                trace=_json.encode(tracing.inject({})) if tracing.active() else b"",
            ),
        )
        if verdict == Suspended.CANCELLED:  # cancelled while it ran: end it instead of waiting
            await self.finish(
                running,
                AgentTaskResult(status=AgentState.CANCELLED),
                {"type": "Cancelled", "message": "cancelled"},
            )
            return
        async with s.redis.pipeline(transaction=False) as pipe:
            if verdict == Suspended.WAITING:
                if suspension.group_id:
                    s.queue_group(pipe, ctx, suspension.group_id, suspension.children, True)
                for child in suspension.children:
                    s.flow.queue_child(pipe, child)
                if deadline:
                    s.flow.queue_deadline(
                        pipe,
                        deadline,
                        {
                            "session_id": ctx.session_id,
                            "execution_id": ctx.execution_id,
                            "message_id": ctx.message_id,
                            "agent_type": running.agent_type,
                            "wait_id": wait["wait_id"],
                            "trace_id": ctx.trace_id,
                            "children": suspension.child_ids,
                        },
                    )
            pipe.xack(running.stream, s.config.consumer_group, running.entry_id)
            turns: list[HistoryEntry] = []
            if verdict == Suspended.WAITING and ctx.is_root:
                question = suspension.question.prompt if suspension.question else ""
                turns = history.queue_suspend(
                    pipe, ctx.session_id, history.turns(ctx, None, question)
                )
            await execute(s.redis, pipe, raise_on_error=True)
        if turns:
            await history.write(ctx.session_id, turns)
        if verdict == Suspended.WAITING and history.execution_log is not None:
            await history.log_execution(ctx)

    async def finish(
        self, running: Running, result: AgentTaskResult, error: dict[str, str] | None
    ) -> str:
        """End the execution: record, final events or the reply to its caller, XACK.
        Returns the state written: CANCELLED, whatever ``result`` says, for a root task
        whose cancel was requested before its end was written (FINISH decides)."""
        s, ctx = self.services, running.context
        history = s.history
        status = str(result.status).upper() or AgentState.COMPLETED
        if status not in (AgentState.COMPLETED, AgentState.FAILED, AgentState.CANCELLED):
            status = AgentState.COMPLETED
        base: dict[str, Any] = {
            "trace_id": ctx.trace_id,
            "session_id": ctx.session_id,
            "source_agent_type": running.agent_type,
            "message_id": ctx.message_id,
            "parent_message_id": ctx.parent_message_id,
        }
        final = AgentTaskResult(
            status=status,
            content=result.content,
            reply_data=result.reply_data,
            metadata=result.metadata,
            extra_payload=result.extra_payload,
        )
        payloads = [
            encode_event(
                # a called agent's final answer is part of its caller's reasoning
                event_type=EventType.REASONING_LOG_DELTA
                if ctx.is_sub_agent
                else EventType.FINAL_ANSWER,
                data=events.final_data(final, ctx.execution_id, error),
                metadata=result.metadata,
                **base,
            )
        ]
        why = self.unreadable(payloads[0], s.config.limits.max_event_bytes, "max_event_bytes")
        if why and status != AgentState.FAILED:
            # an answer no reader should have to take: the task fails, saying why
            message = f"result: {why}; return large data as an artifact"
            status = AgentState.FAILED
            error = {"type": "LimitExceededError", "message": message}
            final = AgentTaskResult(status=status, content=message, metadata=result.metadata)
            payloads[0] = encode_event(
                event_type=EventType.REASONING_LOG_DELTA
                if ctx.is_sub_agent
                else EventType.FINAL_ANSWER,
                data=events.final_data(final, ctx.execution_id, error),
                metadata=result.metadata,
                **base,
            )
        if ctx.is_root:
            payloads.append(
                encode_event(
                    event_type=EventType.APP_STREAM_RESPONSE,
                    data=events.end_data(status, ctx.execution_id),
                    **base,
                )
            )
        summary: dict[str, Any] = {"status": status}
        if error:
            summary["error"] = error
        usage = result.metadata.get("usage") if isinstance(result.metadata, dict) else None
        if isinstance(usage, dict):  # token usage an adapter reported: kept on the record
            summary["usage"] = usage
        write = EndWrite(
            finish=FinishArgs(
                keyspace=s.keys,
                session_id=ctx.session_id,
                execution_id=ctx.execution_id,
                message_id=ctx.message_id,
                status=status,
                now_ms=now_ms(),
                worker_id=s.worker_id,
                result=_json.encode(summary),
                stream_maxlen=s.config.session_stream_maxlen,
                ttl_s=s.config.session_ttl_seconds,
                lock_grace_ms=s.flow.lock_grace_ms,
                outbox=s.outbox.enabled,
                history=history.finish_args(ctx, final),
                events=payloads,
            ),
            ack=(running.stream, running.entry_id),
            context=ctx,
            done=asyncio.get_running_loop().create_future(),
            status=status,
        )
        if ctx.task_group_id:
            write.group_result = {
                "message_id": ctx.message_id,
                "target_agent_type": running.agent_type,
                "status": status,
                "content": final.content,
                "reply_data": final.reply_data,
                **({"error": error} if error else {}),
            }
        elif ctx.reply_to and ctx.parent_message_id:
            reply = functools.partial(
                s.flow.reply_command,
                caller_agent_type=ctx.reply_to,
                caller_message_id=ctx.parent_message_id,
                callee_agent_type=running.agent_type,
                callee_message_id=ctx.message_id,
                session_id=ctx.session_id,
                trace_id=ctx.trace_id,
                user_code=ctx.user_code,
            )
            write.reply = reply(
                status=status,
                content=final.content,
                reply_data=final.reply_data if error is None else {"error": error},
                metadata={**ctx.command.header.metadata, **final.metadata},
                extra_payload=final.extra_payload,
            )
            limit = s.config.limits.max_command_bytes
            why = self.unreadable(write.reply, limit, "max_command_bytes", command=True)
            if why:  # its caller would never read it: it hears why instead of waiting on
                log.warning("reply of %s to its caller: %s", ctx.message_id, why)
                write.reply = reply(
                    status=AgentState.FAILED,
                    content=f"the reply {why}",
                    reply_data={"error": {"type": "LimitExceededError", "message": why}},
                )
        if ctx.is_root and history.writes_outside:
            # before the end: the session's next message starts once the end is written
            await history.write(ctx.session_id, history.turns(ctx, final))
        await self.ends.end(write)
        if write.status == AgentState.COMPLETED:
            self.completed += 1
        elif write.status == AgentState.CANCELLED:
            self.cancelled += 1
        else:
            self.failed += 1
        if history.execution_log is not None:
            await history.log_execution(ctx)
        return write.status

    def unreadable(self, data: bytes, max_bytes: int, setting: str, command: bool = False) -> str:
        """Why a reader (a client, or the worker of a caller) would refuse ``data``: over
        ``max_bytes``, or nested past ``max_depth``; "" when it is fine."""
        if len(data) > max_bytes:
            return f"{len(data):,} bytes is over {setting}={max_bytes:,} (BYWAY_{setting.upper()})"
        depth = self.services.config.limits.max_depth
        if data.count(b"[") + data.count(b"{") > depth:  # else it cannot nest that deep
            decode = decode_command if command else decode_event
            try:
                decode(data, max_bytes=len(data), max_depth=depth)
            except ProtocolError as exc:
                if "nested" in str(exc):
                    return f"is nested deeper than max_depth={depth} (BYWAY_MAX_DEPTH)"
        return ""
