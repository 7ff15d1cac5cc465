"""The ``byway.adapters`` entry point: ``byway worker myapp.graph:graph`` serves any
compiled LangGraph graph (a ``StateGraph(...).compile()``, a prebuilt ReAct agent)."""

from __future__ import annotations

from typing import Any

from byway import ConfigurationError


def adapt(obj: Any, agent_types: list[str] | None) -> Any:
    from langgraph.pregel import Pregel

    if not isinstance(obj, Pregel):
        return None
    if agent_types and len(agent_types) > 1:
        raise ConfigurationError("--agent-type: a graph serves one agent type")
    from byway_langgraph.worker import LangGraphWorker

    return LangGraphWorker(obj, agent_type=agent_types[0] if agent_types else None)
