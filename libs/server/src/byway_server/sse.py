"""Server-sent events: the frames, the resume point, and heartbeats.

Every frame a Byway stream sends carries ``id:`` = the Redis stream entry id of what it
reports, so a client that reconnects with ``Last-Event-ID`` (browsers do so by themselves)
continues after the last frame it saw, on any replica. An idle stream gets a comment
line every ``heartbeat_seconds`` so proxies keep it open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import StreamingResponse

from byway._log import get_logger
from byway_server.errors import ApiError

__all__ = ["SSE", "encode_frame", "resume_point", "sse_response"]

log = get_logger("byway.server")

_ENTRY_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")


@dataclass(frozen=True, slots=True)
class SSE:
    """One frame: ``data`` is JSON-encoded unless it is a str already."""

    data: Any
    event: str = ""
    id: str = ""


def encode_frame(frame: SSE) -> bytes:
    parts = []
    if frame.id:
        parts.append(f"id: {frame.id}")
    if frame.event:
        parts.append(f"event: {frame.event}")
    data = (
        frame.data
        if isinstance(frame.data, str)
        else json.dumps(frame.data, default=str, separators=(",", ":"))
    )
    parts.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(parts) + "\n\n").encode()


def resume_point(request: Request, after: str | None, *, default: str = "0") -> str:
    """Where a stream starts: ``Last-Event-ID`` (a reconnect) over ``?after=``, else
    ``default``; a value that is not a stream entry id is a 422 naming it."""
    header = request.headers.get("last-event-id", "").strip()
    for field, value in (("Last-Event-ID", header), ("after", after or "")):
        if not value:
            continue
        if value in ("0", "$") or (
            _ENTRY_ID.match(value) and all(int(p) < 2**64 for p in value.split("-"))
        ):
            return value
        raise ApiError(
            422, f"{field}: expected a stream entry id like 1700000000000-0", field=field
        )
    return default


async def _with_heartbeats(
    frames: AsyncIterator[SSE], request: Request, every: float, retry_ms: int | None = None
) -> AsyncIterator[bytes]:
    """``frames`` encoded, with a comment whenever none came for ``every`` seconds; stops
    when the client goes away (the response is cancelled, and the task reading
    ``frames`` with it)."""
    queue: asyncio.Queue[SSE | BaseException | None] = asyncio.Queue(maxsize=64)

    async def pump() -> None:
        try:
            async for frame in frames:
                await queue.put(frame)
            await queue.put(None)
        except Exception as exc:  # reported in the stream: the response has started
            await queue.put(exc)

    task = asyncio.create_task(pump())
    try:
        yield (f"retry: {retry_ms}\n" if retry_ms else "").encode() + b": connected\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), every)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield b": heartbeat\n\n"
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                yield encode_frame(SSE(event="error", data={"error": _reported(item)}))
                return
            yield encode_frame(item)
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


def _reported(exc: BaseException) -> str:
    """What a stream that broke off tells its client: a Redis failure by its kind only
    (its text names hosts and ports), anything else as it says; the client reconnects
    with Last-Event-ID."""
    if isinstance(exc, RedisError):
        log.warning("an event stream broke off: %s", exc)
        return f"Redis unavailable ({type(exc).__name__}); reconnect with Last-Event-ID"
    return str(exc) or type(exc).__name__


def sse_response(
    frames: AsyncIterator[SSE],
    request: Request,
    *,
    heartbeat_seconds: float,
    headers: dict[str, str] | None = None,
    retry_ms: int | None = None,
) -> StreamingResponse:
    """A ``text/event-stream`` response of ``frames`` with heartbeats; ``retry_ms``: how
    long a browser waits before it reconnects (the SSE ``retry:`` field)."""
    return StreamingResponse(
        _with_heartbeats(frames, request, heartbeat_seconds, retry_ms),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no", **(headers or {})},
    )
