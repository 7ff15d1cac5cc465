"""LangGraph graphs that ask for structured answers, for the structured-answer tests
(``byway worker tests.agents.answer_graphs:review`` and ``:two``)."""

from __future__ import annotations

import json
import operator
from typing import Annotated, Any, TypedDict

from byway_langgraph import LangGraphWorker
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class _Review(TypedDict):
    topic: str
    outcome: str


def _review_graph() -> Any:
    """One node that stops for a human review in the shape of LangChain's HITL middleware
    (a request with actions and allowed decisions; the answer ``{"decisions": [...]}``)."""

    def review(state: _Review) -> dict[str, str]:
        answer = interrupt(
            {
                "action_requests": [{"name": "deploy", "args": {"env": state["topic"]}}],
                "review_configs": [
                    {"action_name": "deploy", "allowed_decisions": ["approve", "reject"]}
                ],
            }
        )
        decisions = answer["decisions"]  # a string here: "string indices must be integers"
        return {"outcome": ",".join(d["type"] for d in decisions)}

    builder = StateGraph(_Review)
    builder.add_node("review", review)
    builder.add_edge(START, "review")
    builder.add_edge("review", END)
    return builder.compile()


class _Two(TypedDict):
    answers: Annotated[list[str], operator.add]


def _two_graph() -> Any:
    """Two interrupts in one step, each wanting a JSON value of its own."""

    def ask(name: str) -> Any:
        def node(state: _Two) -> dict[str, list[str]]:
            answer = interrupt({"question": f"{name}?"})
            return {"answers": [f"{name}={json.dumps(answer)}"]}

        return node

    builder = StateGraph(_Two)
    builder.add_node("count", ask("count"))
    builder.add_node("color", ask("color"))
    builder.add_edge(START, "count")
    builder.add_edge(START, "color")
    builder.add_edge("count", END)
    builder.add_edge("color", END)
    return builder.compile()


review = LangGraphWorker(
    _review_graph(),
    agent_type="review",
    input_mapper=lambda command, ctx: {"topic": str(command.content), "outcome": ""},
    output_mapper=lambda values: {"content": values["outcome"]},
)
two = LangGraphWorker(
    _two_graph(),
    agent_type="two",
    input_mapper=lambda command, ctx: {"answers": []},
    output_mapper=lambda values: {"content": "; ".join(sorted(values["answers"]))},
)
