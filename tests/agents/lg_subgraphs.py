"""LangGraph graphs whose sync nodes run subgraphs with ``invoke()``: the subgraph then
calls the checkpointer's sync methods from the node's worker thread."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from byway_langgraph import LangGraphWorker
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class Trail(TypedDict):
    topic: str
    steps: Annotated[list[str], operator.add]


def _asking_subgraph() -> Any:
    """Two nodes in a row, each asking a question: the subgraph interrupts twice."""

    def first(state: Trail) -> dict[str, Any]:
        answer = interrupt({"question": f"first about {state['topic']}?"})
        return {"steps": [f"first={answer}"]}

    def second(state: Trail) -> dict[str, Any]:
        answer = interrupt({"question": f"second about {state['topic']}?"})
        return {"steps": [f"second={answer}"]}

    builder = StateGraph(Trail)
    builder.add_node("first", first)
    builder.add_node("second", second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder.compile()  # no checkpointer: it uses its parent's


def sync_subgraph_parent() -> Any:
    """A parent whose sync node invokes the asking subgraph (the common LangGraph pattern
    of calling a subgraph from a node), then records what came back."""
    sub = _asking_subgraph()

    def prepare(state: Trail) -> dict[str, Any]:
        return {"steps": ["prepare"]}

    def delegate(state: Trail) -> dict[str, Any]:
        out = sub.invoke({"topic": state["topic"], "steps": []})
        return {"steps": [f"sub[{' '.join(out['steps'])}]"]}

    builder = StateGraph(Trail)
    builder.add_node("prepare", prepare)
    builder.add_node("delegate", delegate)
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "delegate")
    builder.add_edge("delegate", END)
    return builder.compile()


class Weather(TypedDict, total=False):
    question: str
    route: str
    city: str
    answer: str


def weather_parent() -> Any:
    """A router and a weather subgraph that stops before its forecast node, so a person can
    correct the city it picked (a state update on the subgraph) before it goes on."""

    def pick_city(state: Weather) -> dict[str, Any]:
        return {"city": state["question"].rsplit(" ", 1)[-1].strip("?")}

    def forecast(state: Weather) -> dict[str, Any]:
        return {"answer": f"sunny in {state['city']}"}

    sub = StateGraph(Weather)
    sub.add_node("pick_city", pick_city)
    sub.add_node("forecast", forecast)
    sub.add_edge(START, "pick_city")
    sub.add_edge("pick_city", "forecast")
    sub.add_edge("forecast", END)
    weather = sub.compile(interrupt_before=["forecast"])

    def router(state: Weather) -> dict[str, Any]:
        return {"route": "weather" if "weather" in state["question"] else "other"}

    def other(state: Weather) -> dict[str, Any]:
        return {"answer": "I only know the weather"}

    builder = StateGraph(Weather)
    builder.add_node("router", router)
    builder.add_node("weather", weather)
    builder.add_node("other", other)
    builder.add_edge(START, "router")
    builder.add_conditional_edges("router", lambda s: s["route"], ["weather", "other"])
    builder.add_edge("weather", END)
    builder.add_edge("other", END)
    return builder.compile()


#: for worker processes: ``byway worker tests.agents.lg_subgraphs:sync_subgraph``
sync_subgraph = LangGraphWorker(
    sync_subgraph_parent(),
    agent_type="sync-sub",
    input_mapper=lambda command, ctx: {"topic": str(command.content), "steps": []},
    output_mapper=lambda values: {"content": ", ".join(values["steps"])},
)
