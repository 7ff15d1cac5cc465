"""The LangGraph Server API: runs.

- ``POST /threads/{thread_id}/runs`` (background), ``.../runs/stream`` (SSE),
  ``.../runs/wait`` (the final values); stateless ``POST /runs``, ``/runs/stream``,
  ``/runs/wait`` on a thread made for the run (deleted when it stops, unless
  ``on_completion="keep"``);
- ``GET /threads/{thread_id}/runs`` and ``.../runs/{run_id}``; ``.../join`` (waits, then
  the final values), ``.../stream`` (the run's stream again, resumed after
  ``Last-Event-ID``); ``POST .../cancel`` (``action=interrupt|rollback``, ``wait``);
  ``DELETE .../runs/{run_id}``.

Streams carry ``Location`` (the run's join stream, where ``langgraph-sdk`` reconnects)
and ``Content-Location`` (the run); every frame's ``id:`` is a Redis entry id. Every
route acts for the caller's tenant only: another tenant's thread is a 404.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse

from byway._log import get_logger
from byway_langgraph._api_records import RunRecord, delete_run, get_run, list_runs, put_run
from byway_langgraph.server._launch import RunBody, checked, owned_thread, start_run
from byway_langgraph.server._stream import (
    ACTIVE,
    current_status,
    later_id,
    run_frames,
    run_json,
    run_result,
)
from byway_server import ApiError, Caller, ServerContext, resume_point, sse_response

__all__ = ["router"]

log = get_logger("byway.server")

#: clean-ups started when a client went away (a cancel on disconnect), kept until done
_pending: set[asyncio.Task[Any]] = set()


def _paths(record: RunRecord) -> tuple[str, str]:
    """The run's path and its join stream's."""
    run = f"/threads/{quote(record.thread_id, safe='')}/runs/{quote(record.run_id, safe='')}"
    return run, f"{run}/stream"


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(tags=["runs"])
    caller_dep = Depends(ctx.caller)

    async def owned_run(caller: Caller, thread_id: str, run_id: str) -> RunRecord:
        await owned_thread(ctx, caller, thread_id)
        record = await get_run(ctx.redis, ctx.keys, checked("run_id", run_id))
        if record is None or record.thread_id != thread_id or record.tenant != caller.tenant:
            raise ApiError(404, f"run_id: run {run_id!r} not found", field="run_id")
        return record

    def cancel_later(record: RunRecord, reason: str) -> None:
        task = asyncio.create_task(_cancel(ctx, record, reason))
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    def stream_of(
        request: Request,
        record: RunRecord,
        *,
        after: str,
        modes: list[str],
        metadata: bool,
        cancel_on_disconnect: bool,
    ) -> StreamingResponse:
        async def frames() -> AsyncIterator[Any]:
            finished = False
            try:
                async for frame in run_frames(
                    ctx, record, after=after, modes=modes, metadata=metadata
                ):
                    yield frame
                finished = True
            finally:
                if not finished and cancel_on_disconnect:
                    cancel_later(record, "the client went away (on_disconnect=cancel)")

        run_path, stream_path = _paths(record)
        return sse_response(
            frames(),
            request,
            heartbeat_seconds=ctx.settings.heartbeat_seconds,
            headers={"Location": stream_path, "Content-Location": run_path},
        )

    def result_of(record: RunRecord, *, content_location: str = "") -> StreamingResponse:
        run_path, _ = _paths(record)
        body = _waiting_body(run_result(ctx, record), ctx.settings.heartbeat_seconds)
        return StreamingResponse(
            body,
            media_type="application/json",
            headers={
                "Location": f"{run_path}/join",
                "Content-Location": content_location or run_path,
            },
        )

    # -- creating runs -------------------------------------------------------------------

    @api.post("/threads/{thread_id}/runs", summary="start a run in the background")
    async def create(thread_id: str, body: RunBody, caller: Caller = caller_dep) -> Response:
        record = await start_run(ctx, caller, thread_id, body)
        run_path, _ = _paths(record)
        return _json(run_json(record, "pending"), headers={"Content-Location": run_path})

    @api.post("/runs", summary="start a stateless run in the background")
    async def create_stateless(body: RunBody, caller: Caller = caller_dep) -> Response:
        record = await start_run(ctx, caller, None, body)
        return _json(
            run_json(record, "pending"), headers={"Content-Location": f"/runs/{record.run_id}"}
        )

    @api.post("/threads/{thread_id}/runs/stream", summary="start a run and stream it (SSE)")
    async def stream(
        thread_id: str, body: RunBody, request: Request, caller: Caller = caller_dep
    ) -> StreamingResponse:
        record = await start_run(ctx, caller, thread_id, body)
        return stream_of(
            request,
            record,
            after=record.after,
            modes=record.kwargs["stream_mode"],
            metadata=True,
            cancel_on_disconnect=body.on_disconnect == "cancel",
        )

    @api.post("/runs/stream", summary="start a stateless run and stream it (SSE)")
    async def stream_stateless(
        body: RunBody, request: Request, caller: Caller = caller_dep
    ) -> StreamingResponse:
        record = await start_run(ctx, caller, None, body)
        response = stream_of(
            request,
            record,
            after=record.after,
            modes=record.kwargs["stream_mode"],
            metadata=True,
            cancel_on_disconnect=body.on_disconnect == "cancel",
        )
        response.headers["Content-Location"] = f"/runs/{record.run_id}"
        return response

    @api.post("/threads/{thread_id}/runs/wait", summary="start a run, answer its final values")
    async def wait(thread_id: str, body: RunBody, caller: Caller = caller_dep) -> Response:
        record = await start_run(ctx, caller, thread_id, body)
        return result_of(record)

    @api.post("/runs/wait", summary="start a stateless run, answer its final values")
    async def wait_stateless(body: RunBody, caller: Caller = caller_dep) -> Response:
        record = await start_run(ctx, caller, None, body)
        return result_of(record, content_location=f"/runs/{record.run_id}")

    # -- reading and stopping runs -------------------------------------------------------

    @api.get("/threads/{thread_id}/runs", summary="the thread's runs, newest first")
    async def list_(
        thread_id: str,
        limit: int = 10,
        offset: int = 0,
        status: str | None = None,
        caller: Caller = caller_dep,
    ) -> list[dict[str, Any]]:
        if not 1 <= limit <= 1000 or offset < 0:
            raise ApiError(422, "limit: expected 1-1000 (and offset >= 0)", field="limit")
        await owned_thread(ctx, caller, thread_id)
        ids = await list_runs(ctx.redis, ctx.keys, thread_id)
        if status is None:  # else every run's status is needed to filter
            ids = ids[offset : offset + limit]
        found = []
        for run_id in ids:
            record = await get_run(ctx.redis, ctx.keys, run_id)
            if record is None or record.tenant != caller.tenant:
                continue
            state = await current_status(ctx, record)
            if status is None or state == status:
                found.append(run_json(record, state))
        return found if status is None else found[offset : offset + limit]

    @api.get("/threads/{thread_id}/runs/{run_id}", summary="one run")
    async def get(thread_id: str, run_id: str, caller: Caller = caller_dep) -> dict[str, Any]:
        record = await owned_run(caller, thread_id, run_id)
        return run_json(record, await current_status(ctx, record))

    @api.get("/threads/{thread_id}/runs/{run_id}/join", summary="wait for a run's end")
    async def join(thread_id: str, run_id: str, caller: Caller = caller_dep) -> Response:
        return result_of(await owned_run(caller, thread_id, run_id))

    @api.get(
        "/threads/{thread_id}/runs/{run_id}/stream",
        summary="a run's stream (SSE), resumed after Last-Event-ID",
    )
    async def join_stream(
        thread_id: str,
        run_id: str,
        request: Request,
        cancel_on_disconnect: str | None = None,
        caller: Caller = caller_dep,
    ) -> StreamingResponse:
        record = await owned_run(caller, thread_id, run_id)
        last = resume_point(request, None, default="")
        modes = _modes(request) or list(record.kwargs.get("stream_mode") or ["values"])
        return stream_of(
            request,
            record,
            after=later_id(last, record.after) if last else record.after,
            modes=modes,
            metadata=not last,
            cancel_on_disconnect=_truthy(cancel_on_disconnect),
        )

    @api.post("/threads/{thread_id}/runs/{run_id}/cancel", summary="cancel a run")
    async def cancel(
        thread_id: str,
        run_id: str,
        wait: str | None = None,
        action: str = "interrupt",
        caller: Caller = caller_dep,
    ) -> Response:
        if action not in ("interrupt", "rollback"):
            raise ApiError(422, "action: expected 'interrupt' or 'rollback'", field="action")
        record = await owned_run(caller, thread_id, run_id)
        status = await current_status(ctx, record)
        if status not in ACTIVE:
            raise ApiError(409, f"run_id: run {run_id!r} is {status}, not running", field="run_id")
        await _cancel(ctx, record, f"{action} requested through the API")
        if _truthy(wait):
            return result_of(record)
        return Response(status_code=202)

    @api.delete("/threads/{thread_id}/runs/{run_id}", status_code=204, summary="delete a run")
    async def delete(thread_id: str, run_id: str, caller: Caller = caller_dep) -> Response:
        record = await owned_run(caller, thread_id, run_id)
        status = await current_status(ctx, record)
        if status in ACTIVE:
            raise ApiError(
                409, f"run_id: run {run_id!r} is {status}; cancel it first", field="run_id"
            )
        await delete_run(ctx.redis, ctx.keys, record)
        return Response(status_code=204)

    return api


async def _cancel(ctx: ServerContext, record: RunRecord, reason: str) -> None:
    """Cancel the run's message (its tree), and say so in its record."""
    try:
        await ctx.client.cancel_task(record.message_id, record.thread_id, reason=reason)
    except Exception as exc:  # no execution yet, Redis away: the record still says so
        log.warning("run %s: cancel not sent (%s)", record.run_id, exc)
    record.status = "interrupted"
    record.cancel_reason = reason
    await put_run(ctx.redis, ctx.keys, record)


def _modes(request: Request) -> list[str]:
    """``?stream_mode=`` of a join stream: repeated, one value, or a JSON list."""
    modes: list[str] = []
    for value in request.query_params.getlist("stream_mode"):
        if value.startswith("["):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                modes.extend(str(v) for v in parsed)
                continue
        if value:
            modes.append(value)
    return modes


def _json(data: Any, *, headers: dict[str, str]) -> Response:
    return Response(json.dumps(data, default=str), media_type="application/json", headers=headers)


async def _waiting_body(result: Awaitable[Any], every: float) -> AsyncIterator[bytes]:
    """The result as JSON once it is in, with a newline every ``every`` seconds before
    (JSON readers skip leading whitespace; proxies see the connection is alive)."""
    task = asyncio.ensure_future(result)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                yield json.dumps(task.result(), default=str).encode()
                return
            yield b"\n"
    finally:
        if not task.done():
            task.cancel()
