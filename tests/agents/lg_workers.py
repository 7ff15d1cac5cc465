"""LangGraph workers for worker processes (``byway worker tests.agents.lg_workers:...``)."""

from __future__ import annotations

from byway_langgraph import LangGraphWorker

from tests.agents.graphs import pipeline_graph

pipeline = LangGraphWorker(
    pipeline_graph,
    agent_type="pipeline",
    input_mapper=lambda command, ctx: {"topic": str(command.content), "done": []},
    output_mapper=lambda values: {"content": ", ".join(values["done"])},
)
