"""A JSON body nested deeper than Byway carries is refused before any route sees it.

What a request holds ends up in commands, records and responses, each of which has a
depth limit of its own (the core's ``max_depth``, pydantic's serializer); a body that
passed one and broke another would be stored and then fail every read of it. So the
server refuses it at the door, with a 422 naming the body, below the core's limit so
that what it wraps around the body (metadata, specs) still fits.
"""

from __future__ import annotations

import json

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byway.limits import DEFAULT_MAX_DEPTH
from byway_server.errors import error_body

__all__ = ["MAX_BODY_DEPTH", "JsonDepthLimit"]

#: the deepest JSON body accepted: the core's limit, less what a command adds around it
MAX_BODY_DEPTH = max(8, DEFAULT_MAX_DEPTH - 16)


def depth_of(value: object) -> int:
    """How deeply ``value`` nests (a scalar is 0), without recursion."""
    deepest = 0
    todo: list[tuple[object, int]] = [(value, 0)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict):
            children: list[object] | object = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        todo.extend((child, level + 1) for child in children)  # type: ignore[union-attr]
    return deepest


class JsonDepthLimit:
    """422 for a JSON body nested deeper than ``limit``; other bodies pass untouched (one
    that does not parse is left to the route, which says so)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_DEPTH) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            too_deep = depth_of(msgspec.json.decode(body)) > self.limit
        except RecursionError:  # deeper than the decoder goes
            too_deep = True
        except msgspec.DecodeError:
            too_deep = False
        if too_deep:
            await _refuse(send, self.limit)
            return
        whole: Message | None = {"type": "http.request", "body": body}

        async def replay() -> Message:
            nonlocal whole
            if whole is not None:
                message, whole = whole, None
                return message
            return await receive()

        await self.app(scope, replay, send)


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return b"json" in value.lower()
    return False


async def _refuse(send: Send, limit: int) -> None:
    message = f"body: JSON nested deeper than {limit} levels"
    body = json.dumps(error_body(422, message, "body")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
