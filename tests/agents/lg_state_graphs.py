"""Graphs for the LangGraph Server API's assistants and threads tests (served by worker
processes: ``byway worker tests.agents.lg_state_graphs:reviewer``).

``review_graph``: a scripted model drafts, ``review`` asks a person (``interrupt``), then
``publish`` appends a note. ``notes`` has a reducer (``operator.add``), so a state update
shows whether it ran on the graph (appended) or was written as is (replaced).
"""

from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass
from typing import Annotated, Any

from byway_langgraph import LangGraphWorker
from byway_langgraph._api_ops import run_op
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt

from byway import AskAgentCommand


@dataclass
class Reviewer:
    """The graph's context (its context schema)."""

    audience: str = "everyone"


class Review(MessagesState):
    notes: Annotated[list[str], operator.add]


_model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content="a first draft")]))


async def draft(state: Review) -> dict[str, Any]:
    reply = await _model.ainvoke(state["messages"])
    return {"messages": [reply], "notes": ["drafted"]}


def review(state: Review) -> dict[str, Any]:
    verdict = interrupt({"question": "publish the draft?"})
    return {"notes": [f"reviewed: {verdict}"]}


def publish(state: Review) -> dict[str, Any]:
    return {"notes": ["published"]}


def _review_graph() -> Any:
    builder = StateGraph(Review, context_schema=Reviewer)
    builder.add_node("draft", draft)
    builder.add_node("review", review)
    builder.add_node("publish", publish)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", "publish")
    builder.add_edge("publish", END)
    return builder.compile(name="reviewer")


review_graph = _review_graph()


class OpWorker(LangGraphWorker):
    """A LangGraphWorker that hands the API's operations to ``run_op`` itself (what the
    run path's dispatch does once it is merged; this keeps these tests independent of it)."""

    async def process_command(self, command: Any, context: Any) -> Any:
        op = command.header.metadata.get("langgraph_api")
        if isinstance(command, AskAgentCommand) and isinstance(op, dict) and op.get("op"):
            return await run_op(self, self._graph_for(context), command, context, op)
        return await super().process_command(command, context)


reviewer = OpWorker(review_graph, agent_type="reviewer")


def _nested_graph() -> Any:
    """``outer`` is a subgraph whose ``ask`` node interrupts."""

    def ask(state: Review) -> dict[str, Any]:
        return {"notes": [f"inner: {interrupt({'question': 'inside?'})}"]}

    inner = StateGraph(Review)
    inner.add_node("ask", ask)
    inner.add_edge(START, "ask")
    builder = StateGraph(Review)
    builder.add_node("outer", inner.compile())
    builder.add_edge(START, "outer")
    return builder.compile(name="nested")


nested_graph = _nested_graph()
