"""What the thread routes share: the caller's thread (or 404), its status, its state.

A LangGraph thread is a Byway session: the session registry's ``tenant`` field says
whose it is (checked through :class:`~byway_server.ServerContext`), its executions say
whether it is busy, and the thread record (:mod:`byway_langgraph._api_records`) holds
what LangGraph adds: metadata, times, the graph, the recorded state.
"""

from __future__ import annotations

import asyncio
from typing import Any

from byway._client.types import checked_id
from byway.errors import ConfigurationError
from byway.protocol import AgentState
from byway_langgraph._api_records import ThreadRecord, get_thread, get_thread_state
from byway_langgraph._checkpoint_view import CheckpointView, empty_state
from byway_langgraph._graph_info import read_assistant
from byway_langgraph.server.assistants import iso
from byway_server import ApiError, Caller, ServerContext

__all__ = [
    "STATE_FIELDS",
    "current_state",
    "flatten_subgraphs",
    "owned_thread",
    "select_state",
    "state_channels",
    "thread_json",
    "thread_status",
    "valid_thread_id",
]

#: what a ThreadState shows (``select`` takes these, and ``values.<key>``)
STATE_FIELDS = (
    "values",
    "next",
    "tasks",
    "checkpoint",
    "metadata",
    "created_at",
    "parent_checkpoint",
    "interrupts",
)
_BUSY = {
    AgentState.STARTING,
    AgentState.QUEUED,
    AgentState.RUNNING,
    AgentState.CALLING_AGENT,
    AgentState.WAITING_AGENT,
    AgentState.RESUMED,
    AgentState.CANCELLING,
}


#: why a LangGraph thread id may not hold ':' (see :func:`valid_thread_id`)
NO_COLON = (
    "thread_id: ':' is not allowed in a thread id (Byway's own sessions keep their "
    "graphs' checkpoints under '<session>:<agent type>')"
)


def valid_thread_id(value: str, field: str = "thread_id") -> str:
    """``value`` if it can name a thread: an id the core takes, without ':'. A graph served
    to a native session checkpoints under ``<session>:<agent type>``, and an API thread
    under its bare id: with no ':' in thread ids the two can never name the same
    checkpoints (a thread ``S:agent`` would otherwise read and write session S's)."""
    try:
        checked_id(field, value)
    except ConfigurationError as exc:
        raise ApiError(422, str(exc), field=field) from None
    if ":" in value:
        raise ApiError(422, NO_COLON.replace("thread_id", field, 1), field=field)
    return value


def not_found(thread_id: str) -> ApiError:
    return ApiError(404, f"thread {thread_id!r} not found", field="thread_id")


async def claim_thread(ctx: ServerContext, caller: Caller, thread_id: str) -> None:
    """Make ``thread_id`` the caller's tenant's; 404 (naming the thread) if another's."""
    try:
        await ctx.claim_session(caller, thread_id)
    except ApiError as exc:
        if exc.status == 404:
            raise not_found(thread_id) from None
        raise


async def owned_thread(ctx: ServerContext, caller: Caller, thread_id: str) -> ThreadRecord:
    """The caller's thread ``thread_id``; 404 if it is absent or another tenant's."""
    valid_thread_id(thread_id)
    try:
        owned = await ctx.check_session(caller, thread_id)  # 404 for another tenant's
    except ApiError as exc:
        if exc.status == 404:  # named as the thread it is here, not as a session
            raise not_found(thread_id) from None
        raise
    record = await get_thread(ctx.redis, ctx.keys, thread_id)
    if record is None or record.tenant != caller.tenant:
        raise not_found(thread_id)
    if not owned:  # the session's claim lapsed while its record lived: claim it again
        await ctx.claim_session(caller, thread_id)
    return record


async def thread_status(ctx: ServerContext, thread_id: str, state: dict[str, Any] | None) -> str:
    """busy (a root task queued or running), interrupted (one waits for the user, or the
    state has interrupts), error (the last one failed), else idle. Operations the API
    sent (state updates: not root tasks) do not count."""
    roots = [
        r
        for r in await ctx.client.registry.list_executions(thread_id)
        if r.source_agent_type in ("", "client") and not r.parent_message_id
    ]
    if any(r.status in _BUSY for r in roots):
        return "busy"
    if any(r.status == AgentState.WAITING_USER for r in roots):
        return "interrupted"
    if state and state.get("interrupts"):
        return "interrupted"
    if roots and roots[-1].status == AgentState.FAILED:
        return "error"
    return "idle"


async def statuses(
    ctx: ServerContext, ids: list[str], states: dict[str, dict[str, Any] | None]
) -> dict[str, str]:
    found = await asyncio.gather(*(thread_status(ctx, i, states.get(i)) for i in ids))
    return dict(zip(ids, found, strict=True))


def thread_interrupts(state: dict[str, Any] | None) -> dict[str, list[Any]]:
    """A Thread's ``interrupts``: task id → the interrupts that task raised."""
    found: dict[str, list[Any]] = {}
    for task in (state or {}).get("tasks") or []:
        if isinstance(task, dict) and task.get("interrupts"):
            found[str(task.get("id"))] = list(task["interrupts"])
    return found


def thread_json(record: ThreadRecord, state: dict[str, Any] | None, status: str) -> dict[str, Any]:
    """A LangGraph ``Thread``."""
    recorded = (state or {}).get("recorded_at")
    return {
        "thread_id": record.thread_id,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at or record.created_at),
        "state_updated_at": iso(recorded) if isinstance(recorded, int) else None,
        "metadata": record.metadata,
        "config": {},
        "status": status,
        "values": (state or {}).get("values"),
        "interrupts": thread_interrupts(state),
    }


def clean_state(raw: dict[str, Any] | None, thread_id: str) -> dict[str, Any] | None:
    """A recorded state, if it has the shape a worker writes and is this thread's."""
    if not isinstance(raw, dict):
        return None
    ref = raw.get("checkpoint")
    if not isinstance(ref, dict) or ref.get("thread_id") != thread_id:
        return None
    if not isinstance(ref.get("checkpoint_id"), str):
        return None
    lists = ("next", "tasks", "interrupts")
    if any(not isinstance(raw.get(k, []), list) for k in lists):
        return None
    if not all(isinstance(t, dict) for t in raw.get("tasks", [])):
        return None
    state = {k: raw.get(k) for k in STATE_FIELDS}
    for key in lists:
        state[key] = state[key] or []
    state["metadata"] = state["metadata"] if isinstance(state["metadata"], dict) else {}
    if raw.get("values_in_checkpoint"):
        state["values_in_checkpoint"] = True
    if isinstance(raw.get("recorded_at"), int):
        state["recorded_at"] = raw["recorded_at"]
    return state


async def state_channels(ctx: ServerContext, record: ThreadRecord) -> list[str] | None:
    """The state keys of the thread's graph, if its worker recorded them."""
    graph_id = record.graph_id or record.metadata.get("graph_id")
    if not isinstance(graph_id, str) or not graph_id:
        return None
    info = await read_assistant(ctx.redis, ctx.keys, graph_id)
    return info.state_channels if info and info.state_channels else None


async def recorded_state(ctx: ServerContext, thread_id: str) -> dict[str, Any] | None:
    return clean_state(await get_thread_state(ctx.redis, ctx.keys, thread_id), thread_id)


async def current_state(
    ctx: ServerContext, view: CheckpointView, record: ThreadRecord, *, keep_time: bool = False
) -> dict[str, Any]:
    """The thread's latest state: as its worker recorded it when that is the newest
    checkpoint's, else read from the newest checkpoint, else the empty state
    (``keep_time``: with ``recorded_at``, when it was recorded)."""
    thread_id = record.thread_id
    recorded = await recorded_state(ctx, thread_id)
    latest = await view.latest_id(thread_id)
    if recorded is not None and latest in (None, recorded["checkpoint"]["checkpoint_id"]):
        if recorded.pop("values_in_checkpoint", False):
            derived = await view.state(
                thread_id, latest, channels=await state_channels(ctx, record)
            )
            recorded["values"] = (derived or {}).get("values", {})
        if not keep_time:
            recorded.pop("recorded_at", None)
        return recorded
    if latest is not None:
        state = await view.state(thread_id, latest, channels=await state_channels(ctx, record))
        if state is not None:
            return state
    return empty_state(thread_id)


def flatten_subgraphs(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` without nested subgraph states: each such task names the checkpoint
    namespace its state is in instead (what LangGraph shows without ``subgraphs``)."""
    for task in state.get("tasks") or []:
        nested = task.get("state") if isinstance(task, dict) else None
        if isinstance(nested, dict):
            ref = nested.get("checkpoint") or {}
            task["state"] = None
            task["checkpoint"] = {
                "thread_id": ref.get("thread_id"),
                "checkpoint_ns": ref.get("checkpoint_ns", ""),
            }
    return state


def select_state(state: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    """Only the fields ``select`` names (``values.<key>``: that state key of values)."""
    if not select:
        return state
    keys = [s.split(".", 1)[1] for s in select if s.startswith("values.")]
    unknown = [s for s in select if s not in STATE_FIELDS and not s.startswith("values.")]
    if unknown:
        raise ApiError(422, f"select: unknown field(s) {', '.join(unknown)}", field="select")
    out = {k: state.get(k) for k in select if k in STATE_FIELDS}
    if keys and "values" not in out:
        values = state.get("values")
        out["values"] = (
            {k: values[k] for k in keys if k in values} if isinstance(values, dict) else values
        )
    return out
