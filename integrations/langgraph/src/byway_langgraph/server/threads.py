"""The LangGraph Server API: threads (create, get, update, delete, search, count, copy)
and, from :mod:`byway_langgraph.server.thread_state`, their state and history.

A thread is a Byway session of the caller's tenant: creating one claims the session
(a thread id another tenant holds is 404, as is every read of it), and its record
(:class:`~byway_langgraph._api_records.ThreadRecord`) holds LangGraph's metadata and
times. Its status comes from the session's executions, its values and interrupts from
the state its worker recorded. Search reads the tenant's index of threads (newest first),
so it costs one read per thread of the tenant: fine for thousands, not for millions.

Search's ``values`` filter and the ``values`` it shows are the recorded states' (a
single thread's are checked against its newest checkpoint). Deleting a thread cancels its
running tasks, then deletes its checkpoints and records; a step that was ending as it was
deleted may leave a last checkpoint behind (it expires with the checkpointer's TTL).

Not built: ``supersteps`` on create (501), ``extract`` on search (422), prune.
"""

from __future__ import annotations

import math
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from byway_langgraph._api_records import (
    RECORD_TTL_S,
    ThreadRecord,
    create_thread,
    delete_thread,
    get_thread,
    get_thread_state,
    get_threads,
    list_threads,
    now_ms,
    put_thread,
    put_thread_state,
)
from byway_langgraph._checkpoint_view import CheckpointView
from byway_langgraph.serde import CheckpointLoadError
from byway_langgraph.server import thread_state
from byway_langgraph.server._thread_reads import (
    claim_thread,
    clean_state,
    current_state,
    owned_thread,
    statuses,
    thread_json,
    thread_status,
    valid_thread_id,
)
from byway_langgraph.server.assistants import contains
from byway_server import ApiError, Caller, ServerContext

__all__ = ["router"]

SELECTABLE = (
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "status",
    "values",
    "interrupts",
)
Status = Literal["idle", "busy", "interrupted", "error"]


class TTL(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ttl: float = Field(gt=0, description="minutes")
    strategy: Literal["delete"] = "delete"


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None
    ttl: TTL | float | None = None
    supersteps: list[Any] | None = None


class PatchBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    ttl: TTL | float | None = None


class CountBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Status | None = None


class SearchBody(CountBody):
    ids: list[str] | None = Field(None, max_length=1000)
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: (
        Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] | None
    ) = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[str] | None = None
    extract: dict[str, str] | None = None


def _ttl_seconds(ttl: TTL | float | None) -> int:
    if ttl is None:
        return 0
    minutes = ttl.ttl if isinstance(ttl, TTL) else float(ttl)
    if not math.isfinite(minutes) or abs(minutes) > RECORD_TTL_S:
        raise ApiError(
            422, f"ttl: expected 1 to {RECORD_TTL_S // 60} minutes, got {minutes:g}", field="ttl"
        )
    seconds = int(minutes * 60)
    if not 60 <= seconds <= RECORD_TTL_S:
        raise ApiError(
            422, f"ttl: expected 1 to {RECORD_TTL_S // 60} minutes, got {minutes:g}", field="ttl"
        )
    return seconds


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(tags=["threads"])
    who = Depends(ctx.caller)
    view = CheckpointView(ctx.redis, ctx.keys)

    async def shown(record: ThreadRecord) -> dict[str, Any]:
        try:
            state: dict[str, Any] | None = await current_state(ctx, view, record, keep_time=True)
        except CheckpointLoadError:  # shown without values rather than not at all
            state = None
        if state is not None and not state["checkpoint"].get("checkpoint_id"):
            state = None  # nothing ran on it yet
        return thread_json(record, state, await thread_status(ctx, record.thread_id, state))

    @api.post("/threads", summary="create a thread")
    async def create(body: CreateBody, caller: Caller = who) -> Any:
        if body.supersteps:
            raise ApiError(
                501,
                "supersteps: creating a thread with state is not built; "
                "create it, then update its state",
                field="supersteps",
            )
        thread_id = valid_thread_id(body.thread_id) if body.thread_id else str(uuid.uuid4())
        ttl_s = _ttl_seconds(body.ttl)
        await claim_thread(ctx, caller, thread_id)  # 404 if another tenant holds the id
        metadata = dict(body.metadata or {})
        record = ThreadRecord(
            thread_id=thread_id,
            tenant=caller.tenant,
            metadata=metadata,
            graph_id=str(metadata.get("graph_id") or ""),
            checkpoint_thread=thread_id,
            ttl_s=ttl_s,
        )
        if not await create_thread(ctx.redis, ctx.keys, record):
            existing = await get_thread(ctx.redis, ctx.keys, thread_id)
            if body.if_exists == "do_nothing" and existing and existing.tenant == caller.tenant:
                return await shown(existing)
            raise ApiError(409, f"thread {thread_id!r} already exists", field="thread_id")
        return thread_json(record, None, "idle")

    @api.get("/threads/{thread_id}", summary="a thread")
    async def get(thread_id: str, caller: Caller = who) -> Any:
        return await shown(await owned_thread(ctx, caller, thread_id))

    @api.patch("/threads/{thread_id}", summary="merge metadata into a thread (and its TTL)")
    async def patch(thread_id: str, body: PatchBody, request: Request, caller: Caller = who) -> Any:
        record = await owned_thread(ctx, caller, thread_id)
        if body.ttl is not None:
            record.ttl_s = _ttl_seconds(body.ttl)
        record.metadata = {**record.metadata, **(body.metadata or {})}
        if not record.graph_id and isinstance(record.metadata.get("graph_id"), str):
            record.graph_id = record.metadata["graph_id"]
        record.updated_at = now_ms()
        await put_thread(ctx.redis, ctx.keys, record)
        if request.headers.get("prefer") == "return=minimal":
            return Response(status_code=204)
        return await shown(record)

    @api.delete("/threads/{thread_id}", status_code=204, summary="delete a thread")
    async def delete(thread_id: str, caller: Caller = who) -> Response:
        record = await owned_thread(ctx, caller, thread_id)
        if await thread_status(ctx, thread_id, None) == "busy":
            await ctx.client.cancel_session(thread_id, reason="thread deleted")
        await view.delete(thread_id)
        await delete_thread(ctx.redis, ctx.keys, record)
        return Response(status_code=204)

    async def matching(
        caller: Caller, body: CountBody, ids: list[str] | None, *, all_statuses: bool
    ) -> list[dict[str, Any]]:
        """The caller's threads that match, as Threads; statuses are read for all of them
        only with ``all_statuses`` (else ``status`` is left for :func:`with_status`)."""
        thread_ids = await list_threads(ctx.redis, ctx.keys, caller.tenant)
        if ids is not None:
            wanted = set(ids)
            thread_ids = [t for t in thread_ids if t in wanted]
        rows: list[dict[str, Any]] = []
        for record, raw in await get_threads(ctx.redis, ctx.keys, thread_ids):
            if record is None or record.tenant != caller.tenant:
                continue
            if body.metadata and not contains(record.metadata, body.metadata):
                continue
            state = clean_state(raw, record.thread_id)
            if body.values and not contains((state or {}).get("values"), body.values):
                continue
            rows.append({**thread_json(record, state, ""), "_state": state})
        if all_statuses or body.status:
            rows = await with_status(rows)
        if body.status:
            rows = [r for r in rows if r["status"] == body.status]
        return rows

    async def with_status(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [r["thread_id"] for r in rows if not r["status"]]
        found = await statuses(ctx, ids, {r["thread_id"]: r["_state"] for r in rows})
        for row in rows:
            row["status"] = row["status"] or found[row["thread_id"]]
        return rows

    @api.post("/threads/search", summary="the caller's threads that match")
    async def search(body: SearchBody, response: Response, caller: Caller = who) -> Any:
        if body.extract:
            raise ApiError(422, "extract: not supported by this server", field="extract")
        if body.select:
            unknown = [s for s in body.select if s not in SELECTABLE]
            if unknown:
                raise ApiError(
                    422, f"select: unknown field(s) {', '.join(unknown)}", field="select"
                )
        key = body.sort_by or "created_at"
        rows = await matching(caller, body, body.ids, all_statuses=key == "status")
        rows.sort(key=lambda r: (str(r.get(key) or ""), r["thread_id"]))
        if (body.sort_order or "desc") == "desc":
            rows.reverse()
        page = await with_status(rows[body.offset : body.offset + body.limit])
        response.headers["X-Pagination-Total"] = str(len(rows))
        if body.offset + body.limit < len(rows):
            response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
        for row in page:
            row.pop("_state", None)
        if body.select:
            page = [{k: r[k] for k in body.select} for r in page]
        return page

    @api.post("/threads/count", summary="how many of the caller's threads match")
    async def count(body: CountBody, caller: Caller = who) -> int:
        return len(await matching(caller, body, None, all_statuses=False))

    @api.post("/threads/{thread_id}/copy", summary="a new thread with this one's checkpoints")
    async def copy(thread_id: str, caller: Caller = who) -> Any:
        record = await owned_thread(ctx, caller, thread_id)
        target = str(uuid.uuid4())
        await claim_thread(ctx, caller, target)
        clone = ThreadRecord(
            thread_id=target,
            tenant=caller.tenant,
            metadata=dict(record.metadata),
            graph_id=record.graph_id,
            checkpoint_thread=target,
            ttl_s=record.ttl_s,
        )
        await view.copy(thread_id, target)
        state = await get_thread_state(ctx.redis, ctx.keys, thread_id)
        if not await create_thread(ctx.redis, ctx.keys, clone):
            raise ApiError(409, f"thread {target!r} already exists", field="thread_id")
        if state is not None:
            await put_thread_state(ctx.redis, ctx.keys, target, _renamed(state, thread_id, target))
        return await shown(clone)

    api.include_router(thread_state.router(ctx, view))
    return api


def _renamed(value: Any, old: str, new: str) -> Any:
    """A recorded state with its checkpoints' thread id changed from ``old`` to ``new``."""
    if isinstance(value, dict):
        return {
            k: (new if k == "thread_id" and v == old else _renamed(v, old, new))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_renamed(v, old, new) for v in value]
    return value
