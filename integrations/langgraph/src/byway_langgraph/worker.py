"""LangGraphWorker: a compiled LangGraph graph served as a Byway worker.

One Byway session is one LangGraph thread (``thread_id`` = the session id unless
``thread_id_of`` says otherwise), checkpointed in Redis by default, so every step, every
resume and every retry after a crash can run on any worker:

- a message becomes the graph's input (``{"messages": [HumanMessage]}`` for message-state
  graphs, ``input_mapper`` for anything else) and the last AI message its answer
  (``output_mapper`` for anything else);
- ``messages`` stream chunks become ``answerDelta`` tokens (with the node's name),
  ``updates`` become per-node state events, ``custom`` writes (``get_stream_writer``)
  become custom state events, tool calls and results become tool events;
- ``interrupt(value)`` becomes a question to the user (WAITING_USER, the interrupt ids
  and values in the event); the user's answer resumes the graph with
  ``Command(resume=...)`` on whichever worker takes it;
- :func:`byway_langgraph.agent_tool` lets the graph call another Byway agent durably:
  the graph stops at the tool, the worker slot is freed, and the reply resumes it;
- a run taken over after its worker died continues from the last checkpoint: nodes that
  had completed do not run again;
- a command carrying a ``langgraph_api`` spec is a LangGraph Server API run (``byway
  serve``): see :mod:`byway_langgraph._api_run`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.types import Command

from byway import (
    AgentContext,
    AgentState,
    AgentTaskResult,
    AskAgentCommand,
    AskUserEvent,
    ConfigurationError,
    GatewayWorker,
    ResumeCommand,
    StateChangeEvent,
    StreamChunkEvent,
    TaskCancelledError,
)
from byway._log import get_logger
from byway_langgraph._api_ops import run_op
from byway_langgraph._api_run import STATE_KEY, ApiPublisher, run_api
from byway_langgraph._api_wire import spec_of
from byway_langgraph._open_calls import close_open_calls
from byway_langgraph._questions import (
    prompt_of_all,
    question,
    review_answer,
    review_size,
    schema_json,
)
from byway_langgraph._tool_calls import ToolCallAnnouncer
from byway_langgraph.checkpoint import RedisCheckpointSaver
from byway_langgraph.serde import TypeSpec, graph_types, parse_types
from byway_langgraph.tools import CALL_MARKER

__all__ = ["LangGraphWorker"]

log = get_logger("byway.langgraph")

InputMapper = Callable[[AskAgentCommand, AgentContext], Any]
OutputMapper = Callable[[dict[str, Any]], Any]


def _is_message_graph(graph: Any) -> bool:
    channels = getattr(graph, "channels", None) or {}
    return "messages" in channels


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


class LangGraphWorker(GatewayWorker):
    """Serve ``graph`` (any compiled LangGraph graph) under ``agent_type``.

    ``checkpointer="auto"`` uses a :class:`RedisCheckpointSaver` on the worker's Redis
    (never an in-memory saver: state must outlive the worker); pass any
    ``BaseCheckpointSaver`` (e.g. LangGraph's Postgres saver) to use that instead.
    A Redis saver loads only allowed types: LangGraph's safe ones, LangChain's messages
    and documents, the models, dataclasses and enums the graph's state schemas declare,
    and ``checkpoint_allowed_types`` (classes or ``"module:Name"``) for any others.
    ``stream_mode`` lists what to stream (``messages``, ``updates``, ``custom``).
    """

    def __init__(
        self,
        graph: Any,
        agent_type: str | None = None,
        *,
        input_mapper: InputMapper | None = None,
        output_mapper: OutputMapper | None = None,
        checkpointer: Any = "auto",
        stream_mode: tuple[str, ...] = ("messages", "updates", "custom"),
        thread_id_of: Callable[[AgentContext], str] | None = None,
        worker_id: str | None = None,
        checkpoint_allowed_types: Iterable[TypeSpec] = (),
    ) -> None:
        super().__init__(worker_id)
        if not hasattr(graph, "astream"):
            raise ConfigurationError(
                f"graph: expected a compiled LangGraph graph, got {type(graph).__name__}"
            )
        unknown = set(stream_mode) - {"messages", "updates", "custom", "values"}
        if unknown:
            raise ConfigurationError(f"stream_mode: unknown mode(s) {', '.join(sorted(unknown))}")
        self.graph = graph
        self.agent_type = agent_type or getattr(graph, "name", None) or "LangGraph"
        self.input_mapper = input_mapper
        self.output_mapper = output_mapper
        # updates: interrupts arrive there; values: the final state, without reading it back
        self._emit_updates = "updates" in stream_mode
        self.stream_mode = list(dict.fromkeys([*stream_mode, "updates", "values"]))
        self.thread_id_of = thread_id_of or self._default_thread
        self._checkpointer = checkpointer
        self._allowed = parse_types(checkpoint_allowed_types, source="checkpoint_allowed_types")
        self._bound: Any = None
        self._messages = _is_message_graph(graph)
        #: the default checkpointer's retention (a thread's state lives as long as its
        #: session's records by default)
        self.checkpoint_ttl_seconds = 7 * 86400

    def get_agent_types(self) -> list[str]:
        return [self.agent_type]

    def _default_thread(self, ctx: AgentContext) -> str:
        """The session's conversation with this agent; a call from another agent is a
        conversation of its own (the caller's thread is not the callee's)."""
        if ctx.is_root:
            return f"{ctx.session_id}:{self.agent_type}"
        return f"{ctx.session_id}:{self.agent_type}:{ctx.message_id}"

    def _graph_for(self, ctx: AgentContext) -> Any:
        if self._bound is None:
            saver = self._checkpointer
            allowed = graph_types(self.graph) | self._allowed
            own = getattr(self.graph, "checkpointer", None)
            if saver == "auto" and own not in (None, False, True) and not _in_memory(own):
                saver = own  # the graph was compiled with a durable saver: keep it
            elif saver == "auto":  # the worker's Redis, shared by every worker
                saver = RedisCheckpointSaver(
                    ctx.redis,
                    namespace=ctx.keys.namespace,
                    ttl_seconds=self.checkpoint_ttl_seconds,
                    allowed_types=allowed,
                )
            if isinstance(saver, RedisCheckpointSaver):  # one given: add the graph's types
                saver = saver.with_allowlist(allowed)
            self._bound = self.graph.copy(update={"checkpointer": saver})
        return self._bound

    # -- one run ------------------------------------------------------------------------

    async def process_command(self, command: Any, context: AgentContext) -> Any:
        graph = self._graph_for(context)
        raw = spec_of(command)
        if raw is not None and raw.get("op"):  # an operation on the thread, not a run
            return await run_op(self, graph, command, context, raw)
        if raw is not None or STATE_KEY in context.state:  # a LangGraph Server API run
            return await run_api(self, graph, command, context, raw)
        config = {
            "configurable": {"thread_id": self.thread_id_of(context)},
            # which message a checkpoint belongs to: a retry knows what it may continue;
            # the session, for tracers (OpenInference takes it over the thread id)
            "metadata": {"byway_message_id": context.message_id, "session_id": context.session_id},
        }
        graph_input = await self._input(graph, config, command, context)
        if graph_input is _FINISHED:  # the run ended before its worker died: answer again
            return self._output((await graph.aget_state(config)).values, context)
        return await self._run(graph, graph_input, config, context)

    async def _run(
        self,
        graph: Any,
        graph_input: Any,
        config: Any,
        context: AgentContext,
        api: ApiPublisher | None = None,
        **kwargs: Any,
    ) -> Any:
        # a cancel stops the graph at once (LangGraph keeps its last checkpoint), whatever
        # node it is in; tool calls it leaves open are closed as cancelled
        calls = ToolCallAnnouncer(context.state.pop("announced_calls", None) or ())
        try:
            interrupts, values, paused = await context.until_cancelled(
                self._stream(graph, graph_input, config, context, calls, api, **kwargs)
            )
        except (TaskCancelledError, asyncio.CancelledError):
            if context.cancel_event.is_set():  # not a worker shutting down: the run ends
                await self._close_calls(graph, config, context, context.cancel_reason)
            raise
        thread = {"configurable": {"thread_id": config["configurable"]["thread_id"]}}
        if paused:
            context.state["announced_calls"] = calls.recent()
        if paused and not interrupts:  # a static breakpoint (interrupt_before/after)
            state = await graph.aget_state(thread)
            context.state["breakpoint"] = True
            return await context.ask_user(
                AskUserEvent(
                    prompt=f"paused before {', '.join(state.next) or 'the end'}; answer to go on",
                    metadata={"breakpoint": list(state.next)},
                )
            )
        if interrupts:
            return await self._suspend_at(context, interrupts)
        if values is None:  # nothing ran (an empty graph): read the state back
            values = (await graph.aget_state(thread)).values
        return self._output(values, context)

    async def _stream(
        self,
        graph: Any,
        graph_input: Any,
        config: Any,
        context: AgentContext,
        calls: ToolCallAnnouncer,
        api: ApiPublisher | None = None,
        **kwargs: Any,
    ) -> tuple[list[Any], Any, bool]:
        """Run the graph, streaming to the session (and, for an API run, as the API asked);
        returns (interrupts, final values, whether it paused)."""
        interrupts: list[Any] = []
        values: Any = None
        paused = False
        if api is None:
            chunks = _root(graph.astream(graph_input, config, stream_mode=self.stream_mode))
        else:
            chunks = api.chunks(graph, graph_input, config, self.stream_mode, **kwargs)
        async for ns, mode, chunk in chunks:
            if mode == "messages":
                await self._on_message(context, calls, *chunk)
            elif ns:  # a subgraph's own values and updates: for the API only
                continue
            elif mode == "values":
                values = chunk
            elif mode == "updates":
                for node, update in (chunk or {}).items():
                    if node == "__interrupt__":
                        paused = True
                        interrupts.extend(update)
                        continue
                    if _internal(node):  # LangGraph's own keys (__metadata__...)
                        continue
                    await self._announce(context, calls.on_update(update), str(node))
                    if self._emit_updates:
                        await context.emit_state(
                            StateChangeEvent(
                                state=f"node:{node}", metadata={"update": _jsonable(update)}
                            )
                        )
            elif mode == "custom":
                await context.emit_state(
                    StateChangeEvent(state="custom", metadata={"value": _jsonable(chunk)})
                )
        return interrupts, values, paused

    async def _close_calls(
        self, graph: Any, config: Any, ctx: AgentContext, reason: str, *, before_input: bool = False
    ) -> None:
        """Answer the thread's open tool calls as cancelled and tell the session so. If that
        fails (Redis away, the grace period over), the next message on the thread does it."""
        if not self._messages:
            return
        thread = {"configurable": dict(config["configurable"])}  # no message id: not a run's
        try:
            closed = await asyncio.wait_for(
                close_open_calls(graph, thread, reason or "cancelled"), _CLOSE_SECONDS
            )
        except Exception as exc:
            if before_input:
                raise  # the new turn would fail on the open calls: say why instead
            log.warning("%s: open tool calls not closed yet (%s)", ctx.message_id, exc)
            return
        if closed:
            log.info("%s: closed %d open tool call(s) as cancelled", ctx.message_id, len(closed))
            await ctx.emit_chunk(
                StreamChunkEvent(tool_responses=closed, metadata={"cancelled": True})
            )

    async def _retry_point(self, graph: Any, config: Any, ctx: AgentContext) -> str:
        """Where a run goes on: ``"finished"`` (it was taken over after its worker died
        and had ended), ``"continue"`` (from the checkpoint it reached: the thread's latest
        is this message's), else ``"fresh"`` (from its input)."""
        if not ctx.record.is_retry:
            return "fresh"
        state = await graph.aget_state(config)
        mine = (state.metadata or {}).get("byway_message_id") == ctx.message_id
        if mine and not state.next:
            return "finished"
        if mine and not getattr(state, "interrupts", ()):
            log.info("%s continues from its last checkpoint", ctx.message_id)
            return "continue"
        return "fresh"

    async def _input(self, graph: Any, config: Any, command: Any, ctx: AgentContext) -> Any:
        point = await self._retry_point(graph, config, ctx)
        if point != "fresh":
            return _FINISHED if point == "finished" else None
        if isinstance(command, ResumeCommand):
            if ctx.state.pop("breakpoint", False):
                return None  # a static breakpoint: just go on
            return self._resume_value(command, ctx)
        # a run that stopped mid-tool without closing its calls (its worker died, or the
        # close failed): close them before this turn is appended
        await self._close_calls(graph, config, ctx, _STOPPED, before_input=True)
        if self.input_mapper is not None:
            return self.input_mapper(command, ctx)
        if self._messages:
            return {"messages": [HumanMessage(content=command.content)]}
        raise ConfigurationError(
            f"{self.agent_type}: the graph has no 'messages' channel; "
            "pass input_mapper=... to build its input from the message"
        )

    def _resume_value(self, command: ResumeCommand, ctx: AgentContext) -> Command[Any]:
        pending = ctx.state.get("interrupts", [])
        call = ctx.state.pop("call_interrupt", "")
        if call:  # a called agent answered (agent_tool), or its deadline passed
            value: Any = {
                "status": str(command.status),
                "content": command.content,
                "reply_data": command.reply_data,
            }
            # only that tool's interrupt: the others (more calls, questions) stop the
            # graph again and are asked for in turn
            return Command(resume={call: value} if len(pending) > 1 else value)
        value = command.reply_data if command.reply_data not in (None, "") else command.content
        reviews: dict[str, int] = ctx.state.pop("reviews", None) or {}
        if pending and set(reviews) == set(pending) and len(set(reviews.values())) == 1:
            # review requests all alike: an answer in words is a decision for each
            value = review_answer(value, next(iter(reviews.values())))
        if len(pending) > 1:
            if isinstance(value, dict) and set(value) <= set(pending):
                return Command(resume=value)  # already keyed by interrupt id
            return Command(resume=dict.fromkeys(pending, value))
        return Command(resume=value)

    async def _suspend_at(self, ctx: AgentContext, interrupts: list[Any]) -> Any:
        ctx.state["interrupts"] = [i.id for i in interrupts]
        calls = [i for i in interrupts if _is_call(i.value)]
        if calls:
            ctx.state["call_interrupt"] = calls[0].id
            call = calls[0].value[CALL_MARKER]
            return await ctx.call_agent(
                call["agent_type"], call["content"], timeout=call.get("timeout")
            )
        questions = [
            question(i.id, _jsonable(i.value), schema_json(getattr(i, "response_schema", None)))
            for i in interrupts
        ]
        # review requests (HumanInTheLoopMiddleware): how many decisions each takes, so
        # that an answer in words can be read as decisions
        reviews = {i.id: review_size(i.value) for i in interrupts}
        ctx.state["reviews"] = {k: v for k, v in reviews.items() if v is not None}
        return await ctx.ask_user(
            AskUserEvent(prompt=prompt_of_all(questions), metadata={"interrupts": questions})
        )

    async def _on_message(
        self, ctx: AgentContext, calls: ToolCallAnnouncer, message: Any, meta: dict[str, Any]
    ) -> None:
        node = str(meta.get("langgraph_node", ""))
        if isinstance(message, AIMessage):  # a streamed chunk, or a model's whole reply
            text = _text(message.content)
            if text:
                await ctx.emit_chunk(StreamChunkEvent(content=text, metadata={"node": node}))
            await self._announce(ctx, calls.on_message(message), node)
        elif isinstance(message, ToolMessage):
            result = {
                "name": message.name,
                "id": message.tool_call_id,
                "content": _text(message.content)[:2000],
                "status": message.status,
            }
            await ctx.emit_chunk(StreamChunkEvent(tool_responses=[result], metadata={"node": node}))

    async def _announce(self, ctx: AgentContext, calls: list[dict[str, Any]], node: str) -> None:
        if calls:
            await ctx.emit_chunk(
                StreamChunkEvent(tool_calls=_jsonable(calls), metadata={"node": node})
            )

    def _output(self, values: dict[str, Any], ctx: AgentContext) -> Any:
        if self.output_mapper is not None:
            return self.output_mapper(values)
        messages = values.get("messages") if isinstance(values, dict) else None
        if messages:
            last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), messages[-1])
            usage = getattr(last, "usage_metadata", None)
            return AgentTaskResult(
                status=AgentState.COMPLETED,
                content=_text(last.content),
                metadata={"usage": dict(usage)} if usage else {},
            )
        return AgentTaskResult(
            status=AgentState.COMPLETED, content="", reply_data=_jsonable(values)
        )

    async def on_ready(self, redis: Any, keys: Any) -> None:
        """Record the graph (schemas, drawing) for the LangGraph Server API's assistants;
        a graph that cannot be described is still served."""
        from byway_langgraph._graph_info import record_graph

        try:
            await record_graph(redis, keys, self.agent_type, self.graph)
        except Exception as exc:
            log.warning("%s: graph not recorded for the API (%s)", self.agent_type, exc)


#: _input's answer for a run that had ended before its worker died
_FINISHED = object()
#: how long closing a cancelled run's open tool calls may take
_CLOSE_SECONDS = 5.0
#: why calls found open when a new message arrives were closed
_STOPPED = "the run stopped before the tool answered"


async def _root(chunks: AsyncIterator[Any]) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
    """``graph.astream`` chunks of several modes as ``(ns, mode, chunk)`` of the root."""
    async for mode, chunk in chunks:
        yield (), mode, chunk


def _in_memory(saver: Any) -> bool:
    from langgraph.checkpoint.memory import InMemorySaver

    return isinstance(saver, InMemorySaver)


def _internal(node: Any) -> bool:
    """A key of LangGraph's own in an update (``__metadata__``...), not a node."""
    name = str(node)
    return name.startswith("__") and name.endswith("__")


def _is_call(value: Any) -> bool:
    return isinstance(value, dict) and CALL_MARKER in value


def _jsonable(value: Any) -> Any:
    """A JSON-safe rendering of graph values (messages as role/content)."""
    if isinstance(value, BaseMessage):
        return {"type": value.type, "content": _text(value.content)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
