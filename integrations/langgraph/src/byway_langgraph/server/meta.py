"""The LangGraph Server API: ``/info`` (what this server offers) and ``/ok`` (it is up).

Both answer without a key, as LangGraph Server's do: they say nothing about any tenant.
``/info`` names the versions and the features built here (``flags``): assistants yes
(the graphs the workers serve), crons, the store and webhooks not yet.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter

from byway_server import ServerContext

__all__ = ["router"]


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "0"


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(tags=["meta"])

    @api.get("/info", summary="versions and the features this server offers")
    async def info() -> dict[str, Any]:
        return {
            "version": _version("byway-langgraph"),
            "langgraph_py_version": _version("langgraph"),
            "flags": {
                "assistants": True,
                "crons": False,
                "store": False,
                "webhooks": False,
                "langsmith": False,
            },
            "host": {"kind": "byway", "server_version": _version("byway-server")},
        }

    @api.get("/ok", summary="the server is up")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    return api
