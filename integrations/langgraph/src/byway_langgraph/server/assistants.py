"""The LangGraph Server API: assistants.

Each graph an online worker serves is one assistant, as LangGraph Server makes for every
graph it loads: ``assistant_id`` = a uuid5 of the graph id (the same id LangGraph Server
gives it), ``name`` = the graph id, version 1, ``metadata={"created_by": "system"}``.
They come from what each :class:`~byway_langgraph.LangGraphWorker` records when it
starts (:mod:`byway_langgraph._graph_info`), and only while a worker of the graph is
online. An assistant may be named by its id or by its graph id (as LangGraph allows).

Assistants are the workers', not a tenant's: every key sees the same ones. Creating,
updating and deleting assistants, and choosing a version, are not built: those routes
answer 501 (a graph's assistant is its worker's configuration); ``versions`` lists the
one version there is. ``?xray=`` with a depth draws the subgraphs fully (as ``true``).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from byway_langgraph._graph_info import (
    AssistantInfo,
    assistant_id_of,
    find_recorded,
    read_assistants,
)
from byway_server import ApiError, Caller, ServerContext

__all__ = ["find_assistant", "iso", "online_assistants", "router"]

SELECTABLE = (
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
)
_XRAY = Query(None, description="true, false, or how deep to expand subgraphs")
SortBy = Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"]


def iso(ms: int) -> str:
    """Epoch milliseconds as the API's ISO 8601 time (UTC)."""
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).isoformat()


def assistant_json(info: AssistantInfo) -> dict[str, Any]:
    return {
        "assistant_id": assistant_id_of(info.graph_id),
        "graph_id": info.graph_id,
        "name": info.name or info.graph_id,
        "description": info.description,
        "config": info.config,
        "context": info.context,
        "metadata": info.metadata,
        "version": info.version,
        "created_at": iso(info.created_at),
        "updated_at": iso(info.updated_at or info.created_at),
    }


def contains(document: Any, wanted: Any, _depth: int = 0) -> bool:
    """Whether ``wanted`` is contained in ``document`` (JSON containment, as a metadata
    filter means it: objects by key, recursively; arrays by element; else equal). A
    filter nested deeper than 32 levels matches nothing."""
    if _depth > 32:
        return False
    deeper = _depth + 1
    if isinstance(wanted, dict):
        return isinstance(document, dict) and all(
            key in document and contains(document[key], value, deeper)
            for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return isinstance(document, list) and all(
            any(contains(item, w, deeper) for item in document) for w in wanted
        )
    return bool(document == wanted) and isinstance(document, bool) == isinstance(wanted, bool)


async def online_assistants(ctx: ServerContext) -> list[AssistantInfo]:
    """The recorded graphs whose workers are online, by graph id."""
    recorded = await read_assistants(ctx.redis, ctx.keys)
    online = []
    for graph_id in sorted(recorded):
        live, _ = await ctx.client.registry.has_online_agent_type(graph_id)
        if live:
            online.append(recorded[graph_id])
    return online


async def find_assistant(ctx: ServerContext, assistant_id: str) -> AssistantInfo:
    """The online assistant named by its id or its graph id; 404 naming it otherwise."""
    info = await find_recorded(ctx.redis, ctx.keys, assistant_id)
    if info is not None and (await ctx.client.registry.has_online_agent_type(info.graph_id))[0]:
        return info
    raise ApiError(404, f"assistant {assistant_id!r} not found", field="assistant_id")


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: SortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[str] | None = None


class CountBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None


def _matching(
    found: list[AssistantInfo], graph_id: str | None, name: str | None, metadata: Any
) -> list[dict[str, Any]]:
    rows = [assistant_json(info) for info in found]
    if graph_id:
        rows = [r for r in rows if r["graph_id"] == graph_id]
    if name:  # LangGraph matches names by substring, case-insensitively
        rows = [r for r in rows if name.lower() in str(r["name"]).lower()]
    if metadata:
        rows = [r for r in rows if contains(r["metadata"], metadata)]
    return rows


def _xray(value: str | None) -> bool | int:
    if value in (None, "", "false", "False", "0"):
        return False
    if value in ("true", "True"):
        return True
    try:
        depth = int(str(value))
    except ValueError:
        depth = 0
    if depth <= 0:
        raise ApiError(
            422, f"xray: expected true, false or a positive depth, got {value!r}", field="xray"
        )
    return depth


def _not_built(what: str) -> ApiError:
    return ApiError(
        501,
        f"{what} is not built: a graph's assistant is the one its workers serve "
        "(configure the graph, not the assistant)",
    )


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(tags=["assistants"])
    who = Depends(ctx.caller)

    @api.post("/assistants/search", summary="the assistants of the graphs served now")
    async def search(body: SearchBody, response: Response, caller: Caller = who) -> Any:
        if body.select:
            unknown = [s for s in body.select if s not in SELECTABLE]
            if unknown:
                raise ApiError(
                    422, f"select: unknown field(s) {', '.join(unknown)}", field="select"
                )
        rows = _matching(await online_assistants(ctx), body.graph_id, body.name, body.metadata)
        key = body.sort_by or "created_at"
        rows.sort(key=lambda r: (str(r[key]), r["assistant_id"]))
        if (body.sort_order or "desc") == "desc":
            rows.reverse()
        page = rows[body.offset : body.offset + body.limit]
        response.headers["X-Pagination-Total"] = str(len(rows))
        if body.offset + body.limit < len(rows):
            response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
        if body.select:
            page = [{k: r[k] for k in body.select} for r in page]
        return page

    @api.post("/assistants/count", summary="how many assistants match")
    async def count(body: CountBody, caller: Caller = who) -> int:
        return len(_matching(await online_assistants(ctx), body.graph_id, body.name, body.metadata))

    @api.get("/assistants/{assistant_id}", summary="one assistant (by id or graph id)")
    async def get(assistant_id: str, caller: Caller = who) -> Any:
        return assistant_json(await find_assistant(ctx, assistant_id))

    @api.get("/assistants/{assistant_id}/graph", summary="the drawable graph")
    async def graph(assistant_id: str, xray: str | None = _XRAY, caller: Caller = who) -> Any:
        depth = _xray(xray)
        info = await find_assistant(ctx, assistant_id)
        drawn = info.graph_xray if depth else info.graph
        if drawn is None:
            raise ApiError(
                422,
                f"the graph of assistant {assistant_id!r} cannot be drawn",
                field="assistant_id",
            )
        return drawn

    @api.get("/assistants/{assistant_id}/schemas", summary="the graph's JSON schemas")
    async def schemas(assistant_id: str, caller: Caller = who) -> Any:
        info = await find_assistant(ctx, assistant_id)
        return {"graph_id": info.graph_id, **_five(info.schemas)}

    @api.get("/assistants/{assistant_id}/subgraphs", summary="the subgraphs' schemas")
    async def subgraphs(assistant_id: str, recurse: bool = False, caller: Caller = who) -> Any:
        info = await find_assistant(ctx, assistant_id)
        return _subgraphs(info, None, recurse)

    @api.get("/assistants/{assistant_id}/subgraphs/{namespace}", summary="one subgraph's schemas")
    async def subgraph(
        assistant_id: str, namespace: str, recurse: bool = False, caller: Caller = who
    ) -> Any:
        info = await find_assistant(ctx, assistant_id)
        return _subgraphs(info, namespace, recurse)

    @api.post("/assistants", summary="not built (501)", status_code=501)
    async def create(caller: Caller = who) -> Any:
        raise _not_built("creating an assistant")

    @api.patch("/assistants/{assistant_id}", summary="not built (501)", status_code=501)
    async def update(assistant_id: str, caller: Caller = who) -> Any:
        raise _not_built("updating an assistant")

    @api.delete("/assistants/{assistant_id}", summary="not built (501)", status_code=501)
    async def delete(assistant_id: str, caller: Caller = who) -> Any:
        raise _not_built("deleting an assistant")

    @api.post("/assistants/{assistant_id}/versions", summary="the assistant's versions (one)")
    async def versions(assistant_id: str, caller: Caller = who) -> Any:
        info = await find_assistant(ctx, assistant_id)
        row = assistant_json(info)
        row.pop("updated_at")
        return [row]

    @api.post("/assistants/{assistant_id}/latest", summary="not built (501)", status_code=501)
    async def set_latest(assistant_id: str, caller: Caller = who) -> Any:
        raise _not_built("choosing an assistant's version")

    return api


def _five(schemas: dict[str, Any]) -> dict[str, Any]:
    kinds = ("input_schema", "output_schema", "state_schema", "config_schema", "context_schema")
    return {kind: schemas.get(kind) for kind in kinds}


def _subgraphs(info: AssistantInfo, namespace: str | None, recurse: bool) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for ns, schemas in info.subgraphs.items():
        if namespace is None:
            wanted = recurse or "|" not in ns
        else:
            wanted = ns == namespace or (recurse and ns.startswith(namespace + "|"))
        if wanted:
            found[ns] = {"graph_id": info.graph_id, **_five(schemas)}
    return found
