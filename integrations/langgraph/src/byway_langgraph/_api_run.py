"""A run the LangGraph Server API asked for, on the worker.

:meth:`LangGraphWorker.process_command` hands a command carrying a ``langgraph_api``
spec (:mod:`byway_langgraph._api_wire`) to :func:`run_api`: the graph runs under the
LangGraph thread's own checkpointer thread (the session id), with the request's input or
``Command(resume=..., update=..., goto=...)``, config, context and breakpoints, and
streams what the request asked for. Each chunk goes on the session stream as a
``langgraph`` state event (:class:`ApiPublisher`) beside Byway's own events (tokens, tool
calls, the final answer), so native clients still see the run. ``values`` are published
always: ``/runs/wait`` and ``/join`` answer with the last of them.

An ``interrupt()`` (or a breakpoint) asks the user as every LangGraph run does here, so
the answer — ``command={"resume": ...}`` through the API, or a native answer — resumes
the graph on any worker. Whenever the run stops (its end, an interrupt, an error, a
cancel) the thread's state is recorded for ``GET /threads/{id}/state``; a stateless run's
thread is deleted instead.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from langchain_core.messages import BaseMessageChunk
from langgraph.types import Command, Send

from byway import AgentContext, ResumeCommand, StateChangeEvent
from byway._log import get_logger
from byway.limits import Limits
from byway_langgraph._api_json import to_json
from byway_langgraph._api_records import delete_thread, get_thread
from byway_langgraph._api_wire import API_KEY, EVENT_STATE, RunSpec, check_spec
from byway_langgraph._thread_state import record_thread_state

__all__ = [
    "STATE_KEY",
    "ApiPublisher",
    "api_config",
    "command_of",
    "run_api",
    "spec_for",
    "stopped",
    "stream_kwargs",
]

log = get_logger("byway.langgraph")

#: ``context.state`` key of the spec of the API run a suspended execution belongs to (a
#: native answer or a callee's reply resumes it streaming as the API asked)
STATE_KEY = API_KEY
#: the room an event's envelope needs beside its chunk
_ENVELOPE_BYTES = 8 * 1024
#: why tool calls found open when a new turn arrives are closed
_STOPPED = "the run stopped before the tool answered"
#: the most of a spec kept for the execution's later resumes, and what is kept beyond
_STATE_BYTES = 16 * 1024
_STATE_MINIMUM = ("run_id", "stream_mode", "subgraphs", "temporary")
#: how long recording a stopped run's thread state may take
_RECORD_SECONDS = 10.0
_enc = msgspec.json.Encoder()


class ApiPublisher:
    """Streams one API run's chunks to its session as ``langgraph`` events."""

    def __init__(self, ctx: AgentContext, spec: RunSpec, limits: Limits | None = None) -> None:
        self.ctx = ctx
        self.spec = spec
        self.modes = set(spec.stream_mode)
        self.events = "events" in self.modes
        self._limit = max(1024, (limits or Limits.from_env()).max_event_bytes - _ENVELOPE_BYTES)
        #: ``messages`` mode: each message so far, by id (LangGraph Server's partials)
        self._messages: dict[str, Any] = {}

    def graph_modes(self, native: list[str]) -> list[str]:
        """The graph's stream modes: the worker's own and what the request needs."""
        wanted = list(native)
        for mode in self.spec.stream_mode:
            graph_mode = "messages" if mode in ("messages", "messages-tuple") else mode
            if graph_mode != "events" and graph_mode not in wanted:
                wanted.append(graph_mode)
        return wanted

    async def chunks(
        self, graph: Any, graph_input: Any, config: Any, native: list[str], **kwargs: Any
    ) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
        """Run the graph; yields ``(ns, mode, chunk)`` once each is published."""
        modes = self.graph_modes(native)
        subgraphs = self.spec.subgraphs
        if not self.events:
            async for item in graph.astream(
                graph_input, config, stream_mode=modes, subgraphs=subgraphs, **kwargs
            ):
                ns, mode, chunk = item if subgraphs else ((), *item)
                await self.publish(tuple(ns), mode, chunk)
                yield tuple(ns), mode, chunk
            return
        # astream_events v2: the graph's own chunks are the root run's on_chain_stream
        root = uuid.uuid4()
        events = graph.astream_events(
            graph_input,
            {**config, "run_id": root},
            version="v2",
            stream_mode=modes,
            subgraphs=subgraphs,
            **kwargs,
        )
        async for event in events:
            if event.get("event") == "on_chain_stream" and event.get("run_id") == str(root):
                item = event.get("data", {}).get("chunk")
                ns, mode, chunk = item if subgraphs else ((), *item)
                await self.publish(tuple(ns), mode, chunk)
                yield tuple(ns), mode, chunk
            elif "langsmith:hidden" not in (event.get("tags") or ()):
                await self.emit("events", (), to_json(event))

    async def publish(self, ns: tuple[str, ...], mode: str, chunk: Any) -> None:
        if mode == "messages":
            message, meta = chunk
            if "messages-tuple" in self.modes:
                await self.emit("messages", ns, [to_json(message), to_json(meta)])
            if "messages" in self.modes:
                await self._partial(message, meta)
        elif mode in self.modes or (mode == "values" and not ns):
            await self.emit(mode, ns, to_json(chunk))

    async def _partial(self, message: Any, meta: dict[str, Any]) -> None:
        """LangGraph Server's ``messages`` mode: the message so far, with its metadata once."""
        key = str(getattr(message, "id", "") or id(message))
        seen = self._messages.get(key)
        if seen is None:
            self._messages[key] = message
            await self.emit("messages/metadata", (), {key: {"metadata": to_json(meta)}})
        else:
            try:
                self._messages[key] = seen + message
            except (TypeError, ValueError):  # not chunks of one message after all
                self._messages[key] = message
        partial = isinstance(message, BaseMessageChunk)
        name = "messages/partial" if partial else "messages/complete"
        await self.emit(name, (), [to_json(self._messages[key])])

    async def emit(self, mode: str, ns: tuple[str, ...], data: Any) -> None:
        size = len(_enc.encode(data))
        if size > self._limit:  # one event must stay under BYWAY_MAX_EVENT_BYTES
            data = {"__byway_omitted__": f"a {mode} chunk of {size:,} bytes (over the limit)"}
        await self.ctx.emit_state(
            StateChangeEvent(
                state=EVENT_STATE, metadata={"mode": mode, "ns": list(ns), "data": data}
            )
        )


async def run_api(
    worker: Any, graph: Any, command: Any, ctx: AgentContext, raw: dict[str, Any] | None
) -> Any:
    """Run ``graph`` (the worker's, bound to its checkpointer) as the API asked."""
    spec, own = spec_for(command, ctx, raw)
    thread = {"configurable": {"thread_id": ctx.session_id}}
    halted = False  # the worker is shutting down: the run goes on elsewhere, not stopped
    try:
        point = await worker._retry_point(graph, thread, ctx)
        if point == "finished":  # it ended before its worker died: answer again
            return worker._output((await graph.aget_state(thread)).values, ctx)
        graph_input = None  # "continue": from the checkpoint it reached
        if point == "fresh":
            graph_input = await _input(worker, graph, thread, command, ctx, spec, own)
        publisher = ApiPublisher(ctx, spec)
        config = api_config(spec, ctx)
        return await worker._run(graph, graph_input, config, ctx, publisher, **stream_kwargs(spec))
    except asyncio.CancelledError:
        halted = not ctx.cancel_event.is_set()
        raise
    finally:
        if not halted:
            await stopped(graph, thread, ctx, spec)


async def _input(
    worker: Any,
    graph: Any,
    thread: dict[str, Any],
    command: Any,
    ctx: AgentContext,
    spec: RunSpec,
    own: bool,
) -> Any:
    if isinstance(command, ResumeCommand):
        at_breakpoint = ctx.state.pop("breakpoint", False)
        if not own:  # a native answer, or a called agent's reply
            return None if at_breakpoint else worker._resume_value(command, ctx)
        for key in ("interrupts", "reviews", "call_interrupt"):
            ctx.state.pop(key, None)
        # exactly what the API said: Command(resume=...) (by interrupt id too), or go on
        return command_of(spec.command) if spec.command else None
    # a run that stopped mid-tool without closing its calls: close them first
    await worker._close_calls(graph, thread, ctx, _STOPPED, before_input=True)
    return command_of(spec.command) if spec.command else spec.input


def api_config(spec: RunSpec, ctx: AgentContext) -> dict[str, Any]:
    """The run's config: the request's, under the LangGraph thread's own thread id."""
    config: dict[str, Any] = {k: v for k, v in spec.config.items() if k not in ("configurable",)}
    configurable = {**spec.config.get("configurable", {}), "thread_id": ctx.session_id}
    if spec.checkpoint_id:
        configurable["checkpoint_id"] = spec.checkpoint_id
    if spec.checkpoint_ns:
        configurable["checkpoint_ns"] = spec.checkpoint_ns
    config["configurable"] = configurable
    config["metadata"] = {
        **spec.config.get("metadata", {}),
        # which message a checkpoint belongs to (a retry knows what it may continue)
        "byway_message_id": ctx.message_id,
        "session_id": ctx.session_id,
        "thread_id": ctx.session_id,
        "run_id": spec.run_id,
    }
    return config


def stream_kwargs(spec: RunSpec) -> dict[str, Any]:
    """What ``astream`` takes beside input and config."""
    kwargs: dict[str, Any] = {}
    for name in ("interrupt_before", "interrupt_after"):
        value = getattr(spec, name)
        if value is not None:
            kwargs[name] = value if isinstance(value, str) else list(value)
    if spec.context is not None:
        kwargs["context"] = spec.context
    if spec.durability:
        kwargs["durability"] = spec.durability
    return kwargs


def command_of(command: dict[str, Any]) -> Command[Any]:
    """``Command(resume=..., update=..., goto=...)`` of a checked ``command`` field."""
    kwargs: dict[str, Any] = {}
    if "resume" in command:
        kwargs["resume"] = command["resume"]
    update = command.get("update")
    if update is not None:
        kwargs["update"] = update if isinstance(update, dict) else [tuple(p) for p in update]
    goto = command.get("goto")
    if goto is not None:
        targets = goto if isinstance(goto, list) else [goto]
        kwargs["goto"] = [
            Send(t["node"], t.get("input")) if isinstance(t, dict) else t for t in targets
        ]
    return Command(**kwargs)


def spec_for(command: Any, ctx: AgentContext, raw: dict[str, Any] | None) -> tuple[RunSpec, bool]:
    """The run's spec: the command's own (True), else the one its execution was started
    with (a native answer, a callee's reply: False)."""
    if raw is not None:
        spec = check_spec(raw)
        kept = {k: v for k, v in raw.items() if k not in ("input", "command")}
        if len(_enc.encode(kept)) > _STATE_BYTES:  # a suspension keeps 64 KiB of state
            kept = {k: raw[k] for k in _STATE_MINIMUM if k in raw}
        ctx.state[STATE_KEY] = kept
        return spec, True
    return check_spec(ctx.state[STATE_KEY]), False


async def stopped(graph: Any, thread: dict[str, Any], ctx: AgentContext, spec: RunSpec) -> None:
    """The run stopped (ended, paused, failed or was cancelled): record the thread's state
    for the API, or delete a stateless run's thread. A failure here only logs."""
    thread_id = ctx.session_id
    try:
        if spec.temporary:
            await asyncio.wait_for(_forget(graph, ctx, thread_id), _RECORD_SECONDS)
        else:
            await asyncio.wait_for(
                record_thread_state(ctx.redis, ctx.keys, thread_id, graph, thread),
                _RECORD_SECONDS,
            )
    except Exception as exc:
        log.warning("%s: thread %s state not recorded (%s)", ctx.message_id, thread_id, exc)


async def _forget(graph: Any, ctx: AgentContext, thread_id: str) -> None:
    record = await get_thread(ctx.redis, ctx.keys, thread_id)
    if record is not None:
        await delete_thread(ctx.redis, ctx.keys, record)
    saver = getattr(graph, "checkpointer", None)
    if saver is not None and hasattr(saver, "adelete_thread"):
        await saver.adelete_thread(thread_id)
