"""Tools that leave the graph: calling another Byway agent, asking the user.

Both stop the graph with LangGraph's ``interrupt()``; the worker serving the graph sees
the interrupt, frees its slot while the other agent (or the user) works, and resumes the
graph with the reply — on whichever worker the reply reaches. The tool then returns the
reply as its result, as if the call had been a plain function call.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from langgraph.types import interrupt

__all__ = ["CALL_MARKER", "agent_tool", "ask_user_tool"]

#: key of the interrupt value that asks the worker to call another agent
CALL_MARKER = "byway_call"


def agent_tool(
    agent_type: str,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> BaseTool:
    """A tool that asks the Byway agent ``agent_type`` (a LangGraph graph, an ADK agent or
    a plain handler) and returns its answer. The call is durable: the graph waits at the
    tool without holding a worker, and a worker that dies meanwhile loses nothing."""

    def call(request: str) -> str:
        reply: Any = interrupt(
            {CALL_MARKER: {"agent_type": agent_type, "content": request, "timeout": timeout}}
        )
        if isinstance(reply, dict):
            if reply.get("status") not in (None, "COMPLETED"):
                return (
                    f"{agent_type} did not answer ({reply.get('status')}): {reply.get('content')}"
                )
            return str(reply.get("content", ""))
        return str(reply)

    return StructuredTool.from_function(
        func=call,
        name=name or agent_type,
        description=description or f"Ask the {agent_type} agent. Input: the request, in words.",
    )


def ask_user_tool(
    *, name: str = "ask_user", description: str = "Ask the user a question and wait for the answer."
) -> BaseTool:
    """A tool that asks the user (the session's client) and returns the answer."""

    def ask(question: str) -> str:
        return str(interrupt({"question": question}))

    return StructuredTool.from_function(func=ask, name=name, description=description)
