"""The LangGraph Server API on ``byway serve``: what ``langgraph-sdk`` (Python and JS),
``RemoteGraph`` and LangChain's Agent Chat UI call, served from the graphs Byway's
workers run.

Installed with byway-langgraph and byway-server, ``byway serve`` finds :func:`routes`
through the ``byway.server`` entry point ``langgraph``.
"""

from __future__ import annotations

from fastapi import APIRouter

from byway_langgraph.server import assistants, meta, runs, threads
from byway_server import ServerContext

__all__ = ["routes"]


def routes(ctx: ServerContext) -> APIRouter:
    router = APIRouter()
    router.include_router(assistants.router(ctx))
    router.include_router(threads.router(ctx))
    router.include_router(runs.router(ctx))
    router.include_router(meta.router(ctx))
    return router
