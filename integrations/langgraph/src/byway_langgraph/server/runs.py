"""The LangGraph Server API: runs."""

from __future__ import annotations

from fastapi import APIRouter

from byway_server import ServerContext

__all__ = ["router"]


def router(ctx: ServerContext) -> APIRouter:
    return APIRouter(tags=["runs"])
