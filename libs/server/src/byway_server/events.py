"""``GET /v1/sessions/{session_id}/events``: a session's events as server-sent events.

One frame per event: ``id:`` = its Redis stream entry id, ``event:`` = its type
(``answerDelta``, ``finalAnswer``, ``appStreamResponse``...), ``data:`` = the event as
JSON. A client that reconnects with ``Last-Event-ID`` (a browser's ``EventSource`` does so
by itself) continues after the last frame it saw, on whichever replica it reaches: the
stream is read from Redis, the replica keeps nothing. A reconnect after the end of the
message it waited for (``until_message_id``) gets ``204 No Content``, which tells an
``EventSource`` to stop reconnecting.
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations, and
# theirs name the local `ctx` (Depends(ctx.caller)), which a string annotation cannot reach

from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from byway.errors import ProtocolError
from byway.protocol import EventType, decode_event, is_terminal
from byway_server.auth import Caller
from byway_server.context import ServerContext, valid_id
from byway_server.errors import ApiError
from byway_server.models import ErrorBody
from byway_server.sse import SSE, resume_point, sse_response

__all__ = ["router"]

#: how long a browser waits before it reconnects a dropped stream (the SSE ``retry:``)
RETRY_MS = 1000
_PAGE = 200


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(tags=["events"])

    @api.get(
        "/v1/sessions/{session_id}/events",
        summary="the session's events (SSE), resumable with Last-Event-ID",
        response_class=Response,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "the event stream"},
            204: {"description": "the message named by until_message_id ended before here"},
            **{code: {"model": ErrorBody} for code in (401, 403, 404, 422)},
        },
    )
    async def session_events(
        request: Request,
        session_id: str,
        caller: Annotated[Caller, Depends(ctx.stream_caller)],
        after: Annotated[
            str | None,
            Query(
                description="start after this entry id ('0': from the start, '$': new "
                "events only); a Last-Event-ID header wins over it"
            ),
        ] = None,
        until_message_id: Annotated[
            str | None,
            Query(description="end after this message's end (its appStreamResponse)"),
        ] = None,
        stop_at_end: Annotated[bool, Query(description="end after any message's end")] = False,
        stream_token: Annotated[
            str | None,
            Query(
                description="instead of an API key (what an EventSource can send): the "
                "stream_token a send returned, good for this session only"
            ),
        ] = None,
    ) -> Response:
        del stream_token  # read by ctx.stream_caller
        await ctx.owned_session(caller, session_id)
        start = resume_point(request, after)
        if until_message_id is not None:
            valid_id("until_message_id", until_message_id)
            record = await ctx.client.registry.get_execution_by_message(
                session_id, until_message_id
            )
            if record is not None and record.parent_message_id:
                raise ApiError(
                    422,
                    f"until_message_id: {until_message_id!r} is a task another task started; "
                    "only a message sent by a client has an end event",
                    field="until_message_id",
                )
            if (
                record is not None
                and is_terminal(record.status)
                and not await _end_after(ctx, session_id, until_message_id, start)
            ):
                return Response(status_code=204)
        frames = _frames(ctx, session_id, start, until_message_id, stop_at_end)
        return sse_response(
            frames,
            request,
            heartbeat_seconds=ctx.settings.heartbeat_seconds,
            retry_ms=RETRY_MS,
        )

    return api


async def _frames(
    ctx: ServerContext,
    session_id: str,
    start: str,
    until_message_id: str | None,
    stop_at_end: bool,
) -> AsyncIterator[SSE]:
    async for event in ctx.client.stream(
        session_id, start, until_message_id=until_message_id, stop_at_end=stop_at_end
    ):
        yield SSE(id=event.id, event=event.event_type, data=msgspec.to_builtins(event))


async def _end_after(ctx: ServerContext, session_id: str, message_id: str, start: str) -> bool:
    """Whether the end event (``appStreamResponse``) of the ended ``message_id`` is after
    ``start``. It is written in the same step as the terminal status, so it is in the
    stream by now: look for it after ``start``, newest first (it is usually near the end).
    """
    if start == "$":
        return False
    key = ctx.keys.session_stream(session_id)
    low = "-" if start == "0" else f"({start}"
    high = "+"
    while True:
        page: Any = await ctx.redis.xrevrange(key, high, low, count=_PAGE)
        if any(_is_end_of(fields, message_id, ctx) for _, fields in page):
            return True
        if len(page) < _PAGE:
            return False
        high = f"({page[-1][0].decode()}"


def _is_end_of(fields: Any, message_id: str, ctx: ServerContext) -> bool:
    raw = fields.get(b"data", b"") if isinstance(fields, dict) else b""
    try:
        event = decode_event(
            raw,
            max_bytes=ctx.client.limits.max_command_bytes,
            max_depth=ctx.client.limits.max_depth,
        )
    except ProtocolError:
        return False
    return event.event_type == EventType.APP_STREAM_RESPONSE and event.message_id == message_id
