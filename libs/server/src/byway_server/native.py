"""The native API (``/v1``): send, events (SSE), resume, cancel, executions; health."""

from __future__ import annotations

from fastapi import APIRouter

from byway_server.context import ServerContext

__all__ = ["routes"]


def routes(ctx: ServerContext) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", tags=["health"], summary="the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", tags=["health"], summary="Redis answers")
    async def readyz() -> dict[str, str]:
        await ctx.redis.ping()
        return {"status": "ok"}

    return router
