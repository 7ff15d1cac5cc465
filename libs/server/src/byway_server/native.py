"""The native API (``/v1``): send, events (SSE), resume, cancel, executions; health.

Every session route acts for the caller's tenant: sending claims the session for it
(a session another tenant owns is a 404, as if it did not exist), the tenant is stamped
into the command (``user_code`` and ``metadata["tenant"]``), and every read checks the
owner first. The event stream lives in :mod:`byway_server.events`.
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations, and
# theirs name the local `ctx` (Depends(ctx.caller)), which a string annotation cannot reach

import asyncio
import uuid
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends
from starlette.responses import JSONResponse

from byway.answers import UNKNOWN
from byway.errors import ResumeRefusedError
from byway.registry import ExecutionRecord
from byway_server import events
from byway_server.auth import Caller, issue_stream_token
from byway_server.context import ServerContext, valid_id
from byway_server.errors import ApiError, error_body
from byway_server.models import (
    CallNode,
    CancelRequest,
    CancelResponse,
    ErrorBody,
    Execution,
    ExecutionsResponse,
    ResumeRequest,
    ResumeResponse,
    SendRequest,
    SendResponse,
    execution_of,
)

__all__ = ["call_tree", "events_url", "routes"]

#: the tenant's key in a command's metadata
TENANT_KEY = "tenant"
_READY_TIMEOUT_S = 2.0


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in (401, 422, *codes)}


def events_url(session_id: str, message_id: str) -> str:
    """The path of ``session_id``'s events until ``message_id``'s end."""
    return (
        f"/v1/sessions/{quote(session_id, safe='')}/events"
        f"?until_message_id={quote(message_id, safe='')}"
    )


def call_tree(records: list[ExecutionRecord]) -> list[CallNode]:
    """The call tree of a session's executions: each message under the one that started
    it (``parent_message_id``); what nothing in the session started is a root. Built
    breadth-first with each message placed once, so records that loop (they never
    should) cannot make it endless."""
    by_id = {r.message_id: r for r in records}
    children: dict[str, list[str]] = {}
    for r in records:
        if r.parent_message_id in by_id and r.parent_message_id != r.message_id:
            children.setdefault(r.parent_message_id, []).append(r.message_id)
    starts = [r.message_id for r in records if r.parent_message_id not in by_id]
    placed: set[str] = set()
    roots: list[CallNode] = []

    def node(message_id: str) -> CallNode:
        r = by_id[message_id]
        return CallNode(
            message_id=r.message_id,
            execution_id=r.execution_id,
            agent_type=r.target_agent_type,
            status=r.status,
        )

    # records in a loop have no root: the oldest of them becomes one
    for first in [*starts, *by_id]:
        if first in placed:
            continue
        placed.add(first)
        root = node(first)
        roots.append(root)
        queue = [root]
        while queue:
            parent = queue.pop(0)
            for child_id in children.get(parent.message_id, ()):
                if child_id not in placed:
                    placed.add(child_id)
                    child = node(child_id)
                    parent.children.append(child)
                    queue.append(child)
    return roots


def routes(ctx: ServerContext) -> APIRouter:
    router = APIRouter()
    router.include_router(_health(ctx))
    router.include_router(_messages(ctx))
    router.include_router(events.router(ctx))
    router.include_router(_control(ctx))
    return router


def _health(ctx: ServerContext) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Redis answers (503 when it does not)",
        responses={503: {"model": ErrorBody}},
    )
    async def readyz() -> Any:
        try:
            await asyncio.wait_for(ctx.redis.ping(), _READY_TIMEOUT_S)
        except Exception as exc:  # refused, timed out, any failure: not ready
            why = f"Redis does not answer: {type(exc).__name__}"
            return JSONResponse(error_body(503, why), status_code=503)
        return {"status": "ok"}

    return router


def _messages(ctx: ServerContext) -> APIRouter:
    router = APIRouter(tags=["messages"])

    async def send(session_id: str, body: SendRequest, caller: Caller) -> SendResponse:
        valid_id("agent_type", body.agent_type)
        if body.message_id is not None:
            valid_id("message_id", body.message_id)
        await ctx.claim_session(caller, session_id)
        metadata = {**(body.metadata or {}), TENANT_KEY: caller.tenant}
        sent = await ctx.client.send_message(
            body.agent_type,
            session_id,
            body.content,
            user_code=caller.tenant,
            metadata=metadata,
            message_id=body.message_id,
            multitask_strategy=body.multitask_strategy,
            require_online_worker=body.require_online_worker,
        )
        if not sent.success:
            if sent.error_code == "SESSION_BUSY":
                raise ApiError(409, sent.error, field="session_id", code=sent.error_code)
            raise ApiError(
                503,
                f"agent_type: no online worker serves {body.agent_type!r}; start one "
                f"(byway worker ...) or send with require_online_worker=false to queue it",
                field="agent_type",
                code=sent.error_code,
            )
        return SendResponse(
            session_id=session_id,
            message_id=sent.message_id,
            execution_id=sent.execution_id,
            status=sent.status,
            disposition=sent.disposition,
            queued_behind=sent.queued_behind,
            events_url=events_url(session_id, sent.message_id),
            stream_token=issue_stream_token(ctx.settings, caller.tenant, session_id),
        )

    @router.post(
        "/v1/sessions/{session_id}/messages",
        status_code=202,
        summary="send a message to an agent type in a session",
        responses=_errors(404, 409, 413, 503),
    )
    async def send_to_session(
        session_id: str, body: SendRequest, caller: Annotated[Caller, Depends(ctx.caller)]
    ) -> SendResponse:
        return await send(session_id, body, caller)

    @router.post(
        "/v1/messages",
        status_code=202,
        summary="send a message to an agent type in a new session",
        responses=_errors(413, 503),
    )
    async def send_new(
        body: SendRequest, caller: Annotated[Caller, Depends(ctx.caller)]
    ) -> SendResponse:
        return await send(str(uuid.uuid4()), body, caller)

    @router.post(
        "/v1/sessions/{session_id}/messages/{message_id}/resume",
        status_code=202,
        summary="answer the question a message waits on (ask_user)",
        responses=_errors(404, 409),
    )
    async def resume(
        session_id: str,
        message_id: str,
        body: ResumeRequest,
        caller: Annotated[Caller, Depends(ctx.caller)],
    ) -> ResumeResponse:
        await ctx.owned_session(caller, session_id)
        valid_id("message_id", message_id)
        try:
            sent = await ctx.client.resume(
                session_id,
                message_id,
                body.answer,
                reply_data=body.reply_data,
                user_code=caller.tenant,
            )
        except ResumeRefusedError as exc:
            if exc.status == UNKNOWN:
                raise ApiError(404, str(exc), field="message_id") from None
            raise ApiError(
                409, str(exc), field="message_id", code="RESUME_REFUSED", execution=exc.status
            ) from None
        return ResumeResponse(
            session_id=session_id,
            message_id=message_id,
            status=sent.status,
            events_url=events_url(session_id, message_id),
            stream_token=issue_stream_token(ctx.settings, caller.tenant, session_id),
        )

    return router


def _control(ctx: ServerContext) -> APIRouter:
    router = APIRouter(tags=["executions"])

    async def record_of(caller: Caller, session_id: str, message_id: str) -> ExecutionRecord:
        await ctx.owned_session(caller, session_id)
        valid_id("message_id", message_id)
        record = await ctx.client.registry.get_execution_by_message(session_id, message_id)
        if record is None:
            raise ApiError(
                404, f"message_id: no message {message_id!r} in this session", field="message_id"
            )
        return record

    @router.post(
        "/v1/sessions/{session_id}/messages/{message_id}/cancel",
        summary="cancel a message's task and every task it started",
        responses=_errors(404),
    )
    async def cancel_message(
        session_id: str,
        message_id: str,
        caller: Annotated[Caller, Depends(ctx.caller)],
        body: Annotated[CancelRequest | None, Body()] = None,
    ) -> CancelResponse:
        order = body or CancelRequest()
        await record_of(caller, session_id, message_id)
        done = await ctx.client.cancel_task(
            message_id, session_id, order.reason or None, order.mode
        )
        return CancelResponse(
            session_id=session_id,
            message_id=message_id,
            status=done.status,
            message_ids=done.message_ids,
        )

    @router.post(
        "/v1/sessions/{session_id}/cancel",
        summary="cancel every task of a session, and the messages queued behind them",
        responses=_errors(404),
    )
    async def cancel_session(
        session_id: str,
        caller: Annotated[Caller, Depends(ctx.caller)],
        body: Annotated[CancelRequest | None, Body()] = None,
    ) -> CancelResponse:
        order = body or CancelRequest()
        await ctx.owned_session(caller, session_id)
        done = await ctx.client.cancel_session(session_id, order.reason or None, order.mode)
        return CancelResponse(
            session_id=session_id,
            status="CANCEL_REQUESTED" if done.count else "ALREADY_FINISHED",
            message_ids=done.message_ids,
        )

    @router.get(
        "/v1/sessions/{session_id}/messages/{message_id}",
        summary="a message's execution: status, timeline, result",
        responses=_errors(404),
    )
    async def get_message(
        session_id: str, message_id: str, caller: Annotated[Caller, Depends(ctx.caller)]
    ) -> Execution:
        return execution_of(await record_of(caller, session_id, message_id))

    @router.get(
        "/v1/sessions/{session_id}/executions",
        summary="every execution of a session, and its call tree",
        responses=_errors(404),
    )
    async def list_executions(
        session_id: str, caller: Annotated[Caller, Depends(ctx.caller)]
    ) -> ExecutionsResponse:
        await ctx.owned_session(caller, session_id)
        records = await ctx.client.registry.list_executions(session_id)
        return ExecutionsResponse(
            session_id=session_id,
            executions=[execution_of(r) for r in records],
            tree=call_tree(records),
        )

    return router
