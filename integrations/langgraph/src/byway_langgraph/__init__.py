"""Serve a LangGraph graph as a Byway worker: ``LangGraphWorker(graph, agent_type=...)``,
or ``byway worker myapp.graph:graph --agent-type research`` (the adapter entry point)."""

from byway_langgraph.checkpoint import RedisCheckpointSaver
from byway_langgraph.serde import CheckpointLoadError, StrictSerializer, graph_types
from byway_langgraph.tools import agent_tool, ask_user_tool
from byway_langgraph.worker import LangGraphWorker

__all__ = [
    "CheckpointLoadError",
    "LangGraphWorker",
    "RedisCheckpointSaver",
    "StrictSerializer",
    "agent_tool",
    "ask_user_tool",
    "graph_types",
]
