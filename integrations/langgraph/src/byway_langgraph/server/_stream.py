"""A run as LangGraph Server shows it: its SSE frames, its status, its result, its JSON.

A run is one Byway message (a resume run drives the message that paused) whose events
are on its thread's session stream after :attr:`RunRecord.after`. The worker publishes
the graph's chunks there as ``langgraph`` state events (:mod:`byway_langgraph._api_wire`);
here they become ``event: <mode>[|<ns>...]`` frames whose ``id:`` is the Redis entry id,
so a client that reconnects with ``Last-Event-ID`` — to any replica — continues after
the last frame it saw. A run's stream ends when the run stops: its final answer (an
``event: error`` first when it failed), or the question its interrupt asked.

Status (LangGraph's ``pending``, ``running``, ``success``, ``error``, ``interrupted``,
``timeout``) comes from the message's execution record: QUEUED → pending, running states
→ running, COMPLETED → success, FAILED → error (timeout when the error was one),
CANCELLED → interrupted; a run that stopped at an interrupt is a success (its thread is
the one interrupted), which a run knows because the execution waited once more than
when the run was made.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from typing import Any

from byway import EventType, ExecutionRecord
from byway.protocol import Event
from byway_langgraph._api_records import RunRecord, get_thread_state
from byway_langgraph._api_wire import EVENT_STATE, event_name, mode_matches
from byway_server import SSE, ServerContext

__all__ = [
    "ACTIVE",
    "current_status",
    "later_id",
    "run_events",
    "run_frames",
    "run_json",
    "run_result",
    "run_status",
]

#: statuses of a run that has not stopped
ACTIVE = ("pending", "running")
_FINAL = ("success", "error", "interrupted", "timeout")
#: how long a run's stream may be quiet before its status is read again
_IDLE_S = 5.0


def run_status(record: RunRecord, execution: ExecutionRecord | None) -> str:
    """The run's LangGraph status from its message's execution record."""
    if record.status in _FINAL:
        return record.status
    if execution is None:
        return "pending"
    waits = sum(1 for step in execution.steps if step.status == "WAITING_USER")
    if waits > record.waits_seen:  # it stopped at an interrupt of its own
        return "success"
    status = execution.status.upper()
    if status in ("QUEUED", "STARTING", "WAITING_USER"):  # a resume not taken yet
        return "pending"
    if status == "COMPLETED":
        return "success"
    if status == "CANCELLED":
        return "interrupted"
    if status == "FAILED":
        error = (execution.result or {}).get("error") or {}
        kind = str(error.get("type", "")) if isinstance(error, dict) else ""
        return "timeout" if "timeout" in kind.lower() else "error"
    return "running"


async def current_status(ctx: ServerContext, record: RunRecord) -> str:
    execution = await ctx.client.registry.get_execution_by_message(
        record.thread_id, record.message_id
    )
    return run_status(record, execution)


def _iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()


def run_json(record: RunRecord, status: str) -> dict[str, Any]:
    """The ``Run`` object of the API."""
    return {
        "run_id": record.run_id,
        "thread_id": record.thread_id,
        "assistant_id": record.assistant_id,
        "created_at": _iso(record.created_at),
        "updated_at": _iso(record.updated_at or record.created_at),
        "status": status,
        "metadata": record.metadata,
        "multitask_strategy": record.multitask_strategy,
        "kwargs": record.kwargs,
        "cancel_reason": record.cancel_reason or None,
    }


def _stops(event: Event) -> bool:
    return event.event_type in (
        EventType.FINAL_ANSWER,
        EventType.APP_STREAM_RESPONSE,
        EventType.TASK_STOP,
    )


async def run_events(ctx: ServerContext, record: RunRecord, after: str) -> AsyncIterator[Event]:
    """The run's own events after entry ``after``, up to the one it stopped at."""
    last = after
    while True:
        async for event in ctx.client.stream(record.thread_id, last, idle_timeout=_IDLE_S):
            last = event.id
            if event.message_id != record.message_id:
                continue
            yield event
            if _stops(event):
                return
        # quiet for a while: did it stop without a word (cancelled before it started)?
        if await current_status(ctx, record) not in ACTIVE:
            return


def _chunk(event: Event) -> tuple[str, list[str], Any] | None:
    """``(mode, ns, data)`` of a ``langgraph`` event, if it is one (and well formed)."""
    data = event.data
    if event.event_type != EventType.STEP_COMPLETE or data.get("state") != EVENT_STATE:
        return None
    meta = data.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("mode"), str):
        return None
    ns = meta.get("ns") or []
    if not isinstance(ns, list) or not all(isinstance(n, str) for n in ns):
        return None
    return meta["mode"], ns, meta.get("data")


def _error(event: Event) -> dict[str, Any] | None:
    """``{"error", "message"}`` of a failed run's final event."""
    if event.event_type != EventType.FINAL_ANSWER or event.data.get("status") != "FAILED":
        return None
    error = event.data.get("error")
    error = error if isinstance(error, dict) else {}
    return {
        "error": str(error.get("type") or "Error"),
        "message": str(error.get("message") or event.data.get("content") or ""),
    }


async def run_frames(
    ctx: ServerContext,
    record: RunRecord,
    *,
    after: str,
    modes: list[str] | tuple[str, ...],
    metadata: bool = True,
) -> AsyncIterator[SSE]:
    """The run's SSE frames after entry ``after`` (``metadata``: with the first frame,
    ``event: metadata`` naming the run, as LangGraph Server starts a run's stream)."""
    if metadata:
        yield SSE(event="metadata", data={"run_id": record.run_id, "attempt": 1})
    async for event in run_events(ctx, record, after):
        chunk = _chunk(event)
        if chunk is not None:
            mode, ns, data = chunk
            if mode_matches(mode, modes):
                yield SSE(event=event_name(mode, ns), data=data, id=event.id)
            continue
        error = _error(event)
        if error is not None:
            yield SSE(event="error", data=error, id=event.id)


async def run_result(ctx: ServerContext, record: RunRecord) -> Any:
    """What ``/runs/wait`` and ``/join`` answer: the run's last values (with
    ``__interrupt__`` when it stopped at one), or ``{"__error__": ...}`` when it failed."""
    values: Any = None
    async for event in run_events(ctx, record, record.after):
        chunk = _chunk(event)
        if chunk is not None and chunk[0] == "values" and not chunk[1]:
            values = chunk[2]
        error = _error(event)
        if error is not None:
            return {"__error__": error}
    if values is not None:
        return values
    state = await get_thread_state(ctx.redis, ctx.keys, record.thread_id)
    return (state or {}).get("values") or {}


def later_id(a: str, b: str) -> str:
    """The later of two stream entry ids (``"0"`` is the earliest)."""

    def key(entry: str) -> tuple[int, int]:
        ms, _, seq = entry.partition("-")
        return (int(ms) if ms.isdigit() else 0, int(seq) if seq.isdigit() else 0)

    return a if key(a) >= key(b) else b
