"""The LangGraph Server API: a thread's state, its history, and state updates.

- ``GET /threads/{id}/state`` (``?subgraphs=``), ``POST /threads/{id}/state/checkpoint``
  and ``GET /threads/{id}/state/{checkpoint_id}``: the latest state is the one the
  worker recorded when the thread's last run stopped (exact: it had the graph), unless
  a newer checkpoint exists; a past checkpoint's state, and ``history``, are read from
  the checkpoints (:mod:`byway_langgraph._checkpoint_view`, which says what is derived).
- ``POST /threads/{id}/state`` (``update_state``): needs the graph (reducers,
  ``as_node``), so it is sent to a worker of the thread's graph as an operation
  (:mod:`byway_langgraph._api_ops`), and answered with the new checkpoint once the
  worker has written it. The thread's graph is the one its runs used, else its
  metadata's ``graph_id``, else the body's ``assistant_id``/``graph_id``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from byway import AskAgentCommand, EventType, MessageHeader
from byway_langgraph._api_records import ThreadRecord, now_ms, put_thread
from byway_langgraph._checkpoint_view import CheckpointView
from byway_langgraph.serde import CheckpointLoadError
from byway_langgraph.server._thread_reads import (
    current_state,
    flatten_subgraphs,
    owned_thread,
    recorded_state,
    select_state,
    state_channels,
    valid_thread_id,
)
from byway_langgraph.server.assistants import find_assistant
from byway_server import ApiError, Caller, ServerContext

__all__ = ["OP_SOURCE", "router"]

#: the source agent type of the operations the API sends (not a root task: an update
#: does not queue behind a run that waits for its answer)
OP_SOURCE = "langgraph_api"
#: how long an update may take on the worker
OP_TIMEOUT_S = 60.0
_ID = Field(None, max_length=256)
_SELECT = Query(None, description="the fields to return (values.<key>: one state key)")
_LIMIT = Query(10, ge=1, le=1000)
_BEFORE = Query(None, max_length=256)


class CheckpointRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    thread_id: str | None = _ID
    checkpoint_ns: str | None = _ID
    checkpoint_id: str | None = _ID
    checkpoint_map: dict[str, Any] | None = None


class StateAtBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    checkpoint: CheckpointRef
    subgraphs: bool = False
    select: list[str] | None = None


class UpdateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = Field(None, max_length=256)
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = _ID
    assistant_id: str | None = _ID
    graph_id: str | None = _ID


class HistoryBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(10, ge=1, le=1000)
    before: str | CheckpointRef | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: CheckpointRef | None = None
    select: list[str] | None = None


def _unreadable(thread_id: str, exc: CheckpointLoadError) -> ApiError:
    return ApiError(500, f"thread {thread_id!r}: a checkpoint could not be read ({exc})")


def router(ctx: ServerContext, view: CheckpointView) -> APIRouter:
    api = APIRouter(tags=["threads"])
    who = Depends(ctx.caller)

    async def state_at(
        record: ThreadRecord, checkpoint_id: str | None, checkpoint_ns: str, subgraphs: bool
    ) -> dict[str, Any]:
        thread_id = record.thread_id
        if checkpoint_id:
            valid_thread_id(checkpoint_id, "checkpoint_id")  # an id, as thread ids are
        try:
            if not checkpoint_id and not checkpoint_ns:
                state = await current_state(ctx, view, record)
            else:
                recorded = await recorded_state(ctx, thread_id)
                mine = recorded and recorded["checkpoint"]["checkpoint_id"] == checkpoint_id
                if mine and not checkpoint_ns and recorded and recorded.get("values") is not None:
                    recorded.pop("recorded_at", None)
                    state = recorded
                else:
                    channels = await state_channels(ctx, record) if not checkpoint_ns else None
                    found = await view.state(
                        thread_id, checkpoint_id, checkpoint_ns, channels=channels
                    )
                    if found is None:
                        raise ApiError(
                            404,
                            f"checkpoint {checkpoint_id!r} of thread {thread_id!r} not found",
                            field="checkpoint_id",
                        )
                    state = found
        except CheckpointLoadError as exc:
            raise _unreadable(thread_id, exc) from None
        return state if subgraphs else flatten_subgraphs(state)

    @api.get("/threads/{thread_id}/state", summary="the thread's latest state")
    async def get_state(
        thread_id: str,
        subgraphs: bool = False,
        select: list[str] | None = _SELECT,
        caller: Caller = who,
    ) -> Any:
        record = await owned_thread(ctx, caller, thread_id)
        return select_state(await state_at(record, None, "", subgraphs), select)

    @api.post("/threads/{thread_id}/state/checkpoint", summary="the state at a checkpoint")
    async def post_state_at(thread_id: str, body: StateAtBody, caller: Caller = who) -> Any:
        record = await owned_thread(ctx, caller, thread_id)
        ref = body.checkpoint
        state = await state_at(record, ref.checkpoint_id, ref.checkpoint_ns or "", body.subgraphs)
        return select_state(state, body.select)

    @api.get("/threads/{thread_id}/state/{checkpoint_id}", summary="the state at a checkpoint")
    async def get_state_at(
        thread_id: str,
        checkpoint_id: str,
        subgraphs: bool = False,
        select: list[str] | None = _SELECT,
        caller: Caller = who,
    ) -> Any:
        record = await owned_thread(ctx, caller, thread_id)
        return select_state(await state_at(record, checkpoint_id, "", subgraphs), select)

    async def history(
        record: ThreadRecord,
        limit: int,
        before: str | None,
        metadata: dict[str, Any] | None,
        checkpoint: CheckpointRef | None,
    ) -> list[dict[str, Any]]:
        thread_id = record.thread_id
        ns = (checkpoint.checkpoint_ns if checkpoint else None) or ""
        try:
            states = await view.history(
                thread_id,
                limit=limit,
                before=before,
                metadata=metadata,
                checkpoint_ns=ns,
                checkpoint_id=checkpoint.checkpoint_id if checkpoint else None,
                channels=None if ns else await state_channels(ctx, record),
            )
        except CheckpointLoadError as exc:
            raise _unreadable(thread_id, exc) from None
        recorded = await recorded_state(ctx, thread_id)
        if recorded and recorded.get("values") is not None and not ns:
            recorded.pop("recorded_at", None)
            exact = recorded["checkpoint"]["checkpoint_id"]
            states = [
                flatten_subgraphs(dict(recorded))
                if s["checkpoint"].get("checkpoint_id") == exact
                else s
                for s in states
            ]
        return states

    @api.post("/threads/{thread_id}/history", summary="past states, newest first")
    async def post_history(thread_id: str, body: HistoryBody, caller: Caller = who) -> Any:
        record = await owned_thread(ctx, caller, thread_id)
        before = (
            body.before.checkpoint_id if isinstance(body.before, CheckpointRef) else body.before
        )
        states = await history(record, body.limit, before, body.metadata, body.checkpoint)
        return [select_state(s, body.select) for s in states]

    @api.get("/threads/{thread_id}/history", summary="past states, newest first")
    async def get_history(
        thread_id: str,
        limit: int = _LIMIT,
        before: str | None = _BEFORE,
        caller: Caller = who,
    ) -> Any:
        record = await owned_thread(ctx, caller, thread_id)
        return await history(record, limit, before, None, None)

    @api.post("/threads/{thread_id}/state", summary="update the thread's state (on a worker)")
    async def update_state(thread_id: str, body: UpdateBody, caller: Caller = who) -> Any:
        record = await owned_thread(ctx, caller, thread_id)
        graph_id = await _graph_of(record, body)
        checkpoint = body.checkpoint.model_dump(exclude_none=True) if body.checkpoint else {}
        if body.checkpoint_id and not checkpoint.get("checkpoint_id"):
            checkpoint["checkpoint_id"] = body.checkpoint_id
        op = {
            "op": "update_state",
            "values": body.values,
            "as_node": body.as_node,
            "checkpoint": {k: v for k, v in checkpoint.items() if k != "checkpoint_map"} or None,
        }
        data = await _run_op(ctx, caller, thread_id, graph_id, op)
        record.graph_id = graph_id
        record.updated_at = now_ms()
        await put_thread(ctx.redis, ctx.keys, record)
        reply = data.get("reply_data")
        if not isinstance(reply, dict) or not isinstance(reply.get("checkpoint"), dict):
            raise ApiError(502, "update_state: the worker answered without a checkpoint")
        return {"checkpoint": reply["checkpoint"]}

    async def _graph_of(record: ThreadRecord, body: UpdateBody) -> str:
        graph_id = record.graph_id or record.metadata.get("graph_id")
        if isinstance(graph_id, str) and graph_id:
            return graph_id
        named = body.assistant_id or body.graph_id
        if named:
            return (await find_assistant(ctx, named)).graph_id
        raise ApiError(
            400,
            f"thread {record.thread_id!r} has no graph yet: run it first, create it with "
            "graph_id in its metadata, or name assistant_id in the update",
            field="thread_id",
        )

    return api


async def _run_op(
    ctx: ServerContext, caller: Caller, thread_id: str, graph_id: str, op: dict[str, Any]
) -> dict[str, Any]:
    """Send ``op`` to a worker of ``graph_id`` on ``thread_id`` and wait for its end: the
    data of its final event (``status``, ``reply_data``, ``error``)."""
    message_id = str(uuid.uuid4())
    command = AskAgentCommand(
        header=MessageHeader(
            message_id=message_id,
            session_id=thread_id,
            trace_id=uuid.uuid4().hex,
            source_agent_type=OP_SOURCE,
            target_agent_type=graph_id,
            user_code=caller.tenant,
            metadata={"langgraph_api": op, "tenant": caller.tenant},
        ),
        content=f"langgraph_api: {op['op']}",  # what a reader of the session sees
    )
    after = await ctx.client.last_event_id(thread_id)
    sent = await ctx.client.send_command(command)
    if not sent.success:
        raise ApiError(503, f"no worker of graph {graph_id!r} is online", field="assistant_id")
    try:
        data = await asyncio.wait_for(_final_of(ctx, thread_id, message_id, after), OP_TIMEOUT_S)
    except TimeoutError:
        raise ApiError(
            504, f"{op['op']}: no answer from a worker of {graph_id!r} within {OP_TIMEOUT_S:g}s"
        ) from None
    status = str(data.get("status", "")).upper()
    if status != "COMPLETED":
        error = data.get("error")
        if not isinstance(error, dict):
            error = {}
        why = f"{error.get('type', status)}: {error.get('message', data.get('content', ''))}"
        raise ApiError(400 if status == "FAILED" else 409, f"{op['op']}: {why}")
    return data


async def _final_of(
    ctx: ServerContext, thread_id: str, message_id: str, after: str
) -> dict[str, Any]:
    # an operation is not a root task: its end is a reasoning-log event of kind "final"
    async for event in ctx.client.stream(thread_id, after):
        if event.message_id != message_id:
            continue
        kind = event.data.get("kind") if isinstance(event.data, dict) else None
        if event.event_type in (EventType.REASONING_LOG_DELTA, EventType.FINAL_ANSWER) and (
            kind == "final"
        ):
            data: dict[str, Any] = event.data
            return data
    raise TimeoutError
