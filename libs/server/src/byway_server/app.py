"""The ASGI app: ``create_app()``, what ``byway serve`` runs under uvicorn.

Stateless: everything a request needs is in Redis, so any number of replicas can run
behind a load balancer, and a stream cut by a replica's death continues on another from
its ``Last-Event-ID``. Routes: the native API (:mod:`byway_server.native`), health, and
whatever the installed packages contribute through the ``byway.server`` entry points
(in name order; ``BYWAY_DISABLED_PLUGINS`` names the ones to leave out).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byway import GatewayClient
from byway._log import get_logger
from byway_server._depth import JsonDepthLimit
from byway_server.context import ROUTES_GROUP, ServerContext
from byway_server.errors import error_body, install_error_handlers
from byway_server.settings import ServerSettings

__all__ = ["context_of", "create_app"]

log = get_logger("byway.server")

#: the Host names a server without API keys answers to
_LOOPBACK_NAMES = ["127.0.0.1", "localhost", "*.localhost", "::1", "[::1]"]


class _BodyLimit:
    """413 (JSON) for a body over ``limit`` bytes, before the app sees any of it.

    A ``Content-Length`` over the limit is refused without handing anything on. A body
    without one (chunked) is read here up to the limit and handed on whole, so that a
    too-large one is refused the same way (left to the app, the overflow would surface
    inside the framework's body parsing as some other error). Before answering 413 the
    rest of the body is read and dropped, up to :data:`_DRAIN_BYTES`, so that a client
    still sending can finish and read the answer instead of meeting a reset connection.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                length = value
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                drain = length.isdigit() and int(length) <= self.limit + _DRAIN_BYTES
                await self._refuse(receive, send, more=drain)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            more = bool(message.get("more_body", False))
            if seen > self.limit:
                await self._refuse(receive, send, more=more)
                return
            chunks.append(chunk)
            if not more:
                break
        whole: Message | None = {"type": "http.request", "body": b"".join(chunks)}

        async def replay() -> Message:
            nonlocal whole
            if whole is not None:
                message, whole = whole, None
                return message
            return await receive()  # after the body: disconnects

        await self.app(scope, replay, send)

    async def _refuse(self, receive: Receive, send: Send, *, more: bool) -> None:
        dropped = 0
        while more and dropped <= _DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            more = bool(message.get("more_body", False))
        await _too_large(send, self.limit)


#: how much of a refused body is read (and dropped) so that its sender can read the 413
_DRAIN_BYTES = 1024 * 1024


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(error_body(413, f"body: larger than {limit} bytes", "body")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _contributors() -> list[tuple[str, Callable[[ServerContext], APIRouter]]]:
    disabled = {p.strip() for p in os.environ.get("BYWAY_DISABLED_PLUGINS", "").split(",")}
    found = []
    for ep in sorted(entry_points(group=ROUTES_GROUP), key=lambda e: e.name):
        if "*" in disabled or ep.name in disabled:
            log.info("routes %s disabled (BYWAY_DISABLED_PLUGINS)", ep.name)
            continue
        try:
            found.append((ep.name, ep.load()))
        except ImportError as exc:  # the package's optional dependency is missing
            log.info("routes %s skipped: %s", ep.name, exc)
    return found


def create_app(
    settings: ServerSettings | None = None, *, client: GatewayClient | None = None
) -> FastAPI:
    """The server app for ``settings`` (default: from the environment)."""
    from byway_server import native

    settings = settings or ServerSettings.from_env()
    client = client or settings.client()
    ctx = ServerContext(settings=settings, client=client)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for stop in reversed(ctx.on_shutdown):
                try:
                    await stop()
                except Exception as exc:
                    log.warning("shutdown hook failed: %s", exc)
            await client.close()

    app = FastAPI(
        title="Byway",
        summary="Durable agent runs on Redis Streams: send, stream (SSE), resume, cancel",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.byway = ctx
    install_error_handlers(app)
    app.include_router(native.routes(ctx))
    names = ["native"]
    for name, contribute in _contributors():
        router = contribute(ctx)
        app.include_router(router)
        names.append(name)
    app.state.route_sets = names
    log.info("routes: %s", ", ".join(names))
    # the last added runs first: CORS wraps the body limit, so that a browser can read
    # the 413 too
    if not settings.auth_required:
        # no keys: this machine only. A browser page of another site that renames itself
        # to 127.0.0.1 (DNS rebinding) still sends its own name as Host: refused
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=_LOOPBACK_NAMES)
    app.add_middleware(JsonDepthLimit)
    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["Content-Location", "Location"],
        )
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("byway-server")
    except PackageNotFoundError:
        return "0"


def context_of(app: Any) -> ServerContext:
    """The :class:`ServerContext` of an app made by :func:`create_app`."""
    ctx: ServerContext = app.state.byway
    return ctx
