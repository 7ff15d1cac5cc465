"""Starting a run: the request checked, its assistant and thread found, its command sent.

A new run is a Byway message to the graph's agent type in the thread's session (run id
= message id) carrying the run's spec; a run that answers the thread's open interrupt
(``command={"resume": ...}``, or no input at all at a breakpoint) is a resume of the
message that paused, so it continues on any worker. A new input on an interrupted thread
supersedes the interrupt: the waiting message is cancelled first, as LangGraph starts the
thread over from the new input. ``multitask_strategy`` is Byway's (``rollback`` is
``interrupt``: the checkpoints of the run it stops are kept).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from byway import AgentState, ExecutionRecord, ResumeRefusedError
from byway.errors import ConfigurationError, ProtocolError
from byway.protocol import check_id
from byway_langgraph._api_records import (
    RunRecord,
    ThreadRecord,
    delete_run,
    get_thread,
    now_ms,
    put_run,
    put_thread,
)
from byway_langgraph._api_wire import API_KEY, RunSpec, check_spec
from byway_langgraph.server._thread_reads import valid_thread_id
from byway_server import ApiError, Caller, ServerContext

__all__ = [
    "NAMESPACE_GRAPH",
    "RunBody",
    "assistant_uuid",
    "checked",
    "owned_thread",
    "resolve_assistant",
    "start_run",
]

#: the namespace of an assistant's uuid5 from its graph id (LangGraph Server's)
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
_STRATEGIES = {"reject": "reject", "enqueue": "enqueue", "interrupt": "interrupt"}
_STRATEGIES["rollback"] = "interrupt"


class RunBody(BaseModel):
    """A run request as ``langgraph-sdk`` sends it (fields it may send and this server
    does not use are accepted and ignored: ``checkpoint_during``, ``langsmith_tracer``,
    ``strict_resume``, ``stream_resumable`` — every stream here is resumable)."""

    model_config = ConfigDict(extra="ignore")

    assistant_id: str = Field(min_length=1, max_length=256)
    input: Any = None
    command: dict[str, Any] | None = None
    stream_mode: str | list[str] | None = None
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    interrupt_before: str | list[str] | None = None
    interrupt_after: str | list[str] | None = None
    feedback_keys: list[str] | None = None
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] | None = None
    if_not_exists: Literal["create", "reject"] | None = None
    on_disconnect: Literal["cancel", "continue"] | None = None
    on_completion: Literal["delete", "keep"] | None = None
    after_seconds: int | None = None
    webhook: str | None = None
    durability: Literal["sync", "async", "exit"] | None = None


def assistant_uuid(graph_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE_GRAPH, graph_id))


async def resolve_assistant(ctx: ServerContext, assistant_id: str) -> str:
    """The graph id (agent type) ``assistant_id`` names: a graph id, or the uuid of the
    graph's assistant. 404 when no worker ever served such a graph, 503 when its workers
    are all offline."""
    try:
        check_id("assistant_id", assistant_id, forbid_braces=True)
    except ProtocolError:
        raise _unknown(assistant_id) from None
    registry = ctx.client.registry
    graph_id = assistant_id
    known: set[str] | None = None
    if _is_uuid(assistant_id):
        known = await _known_graphs(ctx)
        wanted = assistant_id.lower()
        graph_id = next((g for g in sorted(known) if assistant_uuid(g) == wanted), assistant_id)
    if await registry.get_online_workers(graph_id):
        return graph_id
    if known is None:
        known = await _known_graphs(ctx)
    if graph_id in known:
        raise ApiError(
            503,
            f"assistant_id: no online worker serves graph {graph_id!r}; start one "
            f"(`byway worker <module>:<graph> --agent-type {graph_id}`)",
            field="assistant_id",
        )
    raise _unknown(assistant_id)


async def _known_graphs(ctx: ServerContext) -> set[str]:
    """Every agent type a worker of this namespace registered (online or not)."""
    keys = ctx.keys
    members: Any = await ctx.redis.smembers(keys.known_workers())
    workers = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
    if not workers:
        return set()
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for worker_id in workers:
            pipe.smembers(keys.worker_agent_types(worker_id))
        found = await pipe.execute()
    return {t.decode() if isinstance(t, bytes) else str(t) for types in found for t in types}


def _unknown(assistant_id: str) -> ApiError:
    return ApiError(
        404,
        f"assistant_id: no graph or assistant {assistant_id!r} is served here "
        "(a worker of the graph records it when it starts)",
        field="assistant_id",
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _refuse_unbuilt(body: RunBody, stateless: bool) -> None:
    if body.after_seconds:
        raise ApiError(422, "after_seconds: scheduled runs are not built", field="after_seconds")
    if body.webhook:
        raise ApiError(422, "webhook: webhooks are not built", field="webhook")
    if body.feedback_keys:
        raise ApiError(422, "feedback_keys: LangSmith feedback is not built", field="feedback_keys")
    if body.input is not None and body.command is not None:
        raise ApiError(422, "command: give input or command, not both", field="command")
    if stateless and body.command is not None and "resume" in body.command:
        raise ApiError(
            400, "command: a stateless run has no interrupt to resume; pass a thread_id",
            field="command",
        )  # fmt: skip


def _spec(run_id: str, body: RunBody, stateless: bool) -> RunSpec:
    raw: dict[str, Any] = {
        "run_id": run_id,
        "stream_mode": body.stream_mode,
        "stream_subgraphs": body.stream_subgraphs,
        "input": body.input,
        "command": body.command,
        "config": body.config,
        "context": body.context,
        "checkpoint": body.checkpoint,
        "checkpoint_id": body.checkpoint_id,
        "interrupt_before": body.interrupt_before,
        "interrupt_after": body.interrupt_after,
        "durability": body.durability,
        "temporary": stateless and body.on_completion != "keep",
    }
    for name in ("interrupt_before", "interrupt_after"):
        if isinstance(raw[name], str) and raw[name] != "*":
            raw[name] = [raw[name]]
    try:
        return check_spec(raw)
    except ConfigurationError as exc:
        field = str(exc).split(":", 1)[0]
        raise ApiError(422, str(exc), field=field) from None


def _summary(value: Any) -> str:
    """A line of text for the Byway message (what native readers see it ask)."""
    messages = value.get("messages") if isinstance(value, dict) else None
    if isinstance(messages, list) and messages:
        last = messages[-1]
        content = last.get("content") if isinstance(last, dict) else last
        if isinstance(content, str) and content.strip():
            return content[:2000]
    try:
        text = json.dumps(value, default=str)[:2000]
    except (TypeError, ValueError):
        text = ""
    return text if text.strip() else "(LangGraph run)"


def checked(field: str, value: str) -> str:
    """``value`` if it is an id Byway takes (1-256 characters, no control characters or
    braces), else a 422 naming ``field``."""
    try:
        return check_id(field, value, forbid_braces=True)
    except ProtocolError as exc:
        raise ApiError(422, str(exc), field=field) from None


async def owned_thread(
    ctx: ServerContext, caller: Caller, thread_id: str, *, claim: bool = False
) -> None:
    """404 unless ``thread_id`` is the caller's tenant's (``claim``: or no one's yet, and
    now the caller's); 422 for an id that is not one."""
    valid_thread_id(thread_id)
    try:
        if claim:
            await ctx.claim_session(caller, thread_id)
        else:
            await ctx.owned_session(caller, thread_id)
    except ApiError as exc:
        if exc.status != 404:
            raise
        raise ApiError(
            404, f"thread_id: thread {thread_id!r} not found", field="thread_id"
        ) from None


async def _thread(
    ctx: ServerContext, caller: Caller, thread_id: str, graph_id: str, create: bool
) -> None:
    """The run's thread, made if asked (``if_not_exists="create"``, a stateless run)."""
    await owned_thread(ctx, caller, thread_id, claim=create)
    record = await get_thread(ctx.redis, ctx.keys, thread_id)
    if record is None and not create:
        raise ApiError(404, f"thread_id: thread {thread_id!r} not found", field="thread_id")
    now = now_ms()
    if record is None:
        record = ThreadRecord(
            thread_id=thread_id,
            tenant=caller.tenant,
            created_at=now,
            graph_id=graph_id,
            checkpoint_thread=thread_id,
        )
    record.graph_id = graph_id
    record.updated_at = now
    await put_thread(ctx.redis, ctx.keys, record)


async def _waiting(ctx: ServerContext, thread_id: str) -> ExecutionRecord | None:
    """The thread's run that stopped at an interrupt and holds it, if any."""
    holder: Any = await ctx.redis.get(ctx.keys.session_lock(thread_id))
    if not holder:
        return None
    message_id = holder.decode() if isinstance(holder, bytes) else str(holder)
    record = await ctx.client.registry.get_execution_by_message(thread_id, message_id)
    if record is None or record.status != AgentState.WAITING_USER:
        return None
    return record


async def start_run(
    ctx: ServerContext, caller: Caller, thread_id: str | None, body: RunBody
) -> RunRecord:
    """Make the run ``body`` asks for on ``thread_id`` (None: a stateless run, on a thread
    of its own) and send it; its record."""
    stateless = thread_id is None
    _refuse_unbuilt(body, stateless)
    graph_id = await resolve_assistant(ctx, body.assistant_id)
    if thread_id is None:
        thread_id = str(uuid.uuid4())
    valid_thread_id(thread_id)
    run_id = str(uuid.uuid4())
    spec = _spec(run_id, body, stateless)
    await _thread(ctx, caller, thread_id, graph_id, stateless or body.if_not_exists == "create")
    waiting = await _waiting(ctx, thread_id)
    record = RunRecord(
        run_id=run_id,
        thread_id=thread_id,
        tenant=caller.tenant,
        assistant_id=assistant_uuid(graph_id),
        graph_id=graph_id,
        message_id=run_id,
        metadata=dict(body.metadata or {}),
        multitask_strategy=body.multitask_strategy or "enqueue",
        after=await ctx.client.last_event_id(thread_id),
        kwargs=_kwargs(spec, body),
        stateless=stateless,
    )
    resume = waiting is not None and (spec.resumes or (body.input is None and body.command is None))
    if waiting is not None and resume:
        await _resume(ctx, record, waiting, spec)
    else:
        if waiting is not None:  # a new input supersedes the open interrupt
            await ctx.client.cancel_task(
                waiting.message_id, thread_id, reason=f"superseded by run {run_id}"
            )
        await _send(ctx, caller, record, spec, body)
    return record


def _kwargs(spec: RunSpec, body: RunBody) -> dict[str, Any]:
    wire = spec.to_wire()
    return {
        "input": body.input,
        "command": body.command,
        "config": body.config or {},
        "context": body.context or {},
        "stream_mode": list(spec.stream_mode),
        "subgraphs": spec.subgraphs,
        "interrupt_before": wire.get("interrupt_before"),
        "interrupt_after": wire.get("interrupt_after"),
        "temporary": spec.temporary,
        "webhook": None,
        "feedback_keys": None,
    }


async def _resume(
    ctx: ServerContext, record: RunRecord, waiting: ExecutionRecord, spec: RunSpec
) -> None:
    record.message_id = waiting.message_id
    record.graph_id = waiting.target_agent_type or record.graph_id
    record.assistant_id = assistant_uuid(record.graph_id)
    record.waits_seen = sum(1 for step in waiting.steps if step.status == AgentState.WAITING_USER)
    await put_run(ctx.redis, ctx.keys, record)
    answer = (spec.command or {}).get("resume", "")
    try:
        await ctx.client.resume(
            record.thread_id,
            waiting.message_id,
            answer,
            target_agent_type=record.graph_id,
            extra_payload={API_KEY: spec.to_wire(), "tenant": record.tenant},
        )
    except (ResumeRefusedError, ConfigurationError) as exc:
        await delete_run(ctx.redis, ctx.keys, record)
        raise ApiError(409, f"command: {exc}", field="command") from None


async def _send(
    ctx: ServerContext, caller: Caller, record: RunRecord, spec: RunSpec, body: RunBody
) -> None:
    await put_run(ctx.redis, ctx.keys, record)
    try:
        sent = await ctx.client.send_message(
            record.graph_id,
            record.thread_id,
            _summary(body.input if body.input is not None else body.command),
            metadata={API_KEY: spec.to_wire(), "tenant": caller.tenant},
            message_id=record.run_id,
            multitask_strategy=_STRATEGIES[body.multitask_strategy or "enqueue"],
        )
    except Exception as exc:  # nothing was queued: no run may stay pending for it
        await delete_run(ctx.redis, ctx.keys, record)
        if isinstance(exc, (ConfigurationError, ProtocolError)):
            raise ApiError(422, f"input: {exc}", field="input") from None
        raise
    if sent.success:
        return
    await delete_run(ctx.redis, ctx.keys, record)
    if sent.error_code == "SESSION_BUSY":
        raise ApiError(
            409,
            f"multitask_strategy: thread {record.thread_id!r} is running a run and the "
            "strategy is 'reject'; wait for it, cancel it, or use 'enqueue' or 'interrupt'",
            field="multitask_strategy",
        )
    raise ApiError(503, f"assistant_id: {sent.error}", field="assistant_id")
