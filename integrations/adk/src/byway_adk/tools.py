"""An ADK tool that asks another Byway agent: a LangGraph graph, another ADK agent, a
plain handler.

The tool is an ADK long-running tool. The model calls it; the tool answers "pending"
at once, and the worker serving the agent pauses the invocation there, frees its slot,
and asks the other agent through Byway. The callee's reply comes back as the function
response of the same call (same id and name), on whichever worker takes the reply, and
the model goes on from it.
"""

from __future__ import annotations

import re
from typing import Any

from google.adk.tools.long_running_tool import LongRunningFunctionTool

__all__ = ["CALL_MARKER", "agent_tool"]

#: key of the function response that asks the worker to call another agent
CALL_MARKER = "byway_call"


def agent_tool(
    agent_type: str,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> LongRunningFunctionTool:
    """A tool that asks the Byway agent ``agent_type`` and gives the model its answer:
    ``{"status": "COMPLETED", "content": ..., "reply_data": ...}``.

    ``name`` defaults to ``agent_type`` made a valid function name; ``timeout`` (seconds)
    ends the wait with status ``TIMEOUT``.
    """
    if not agent_type:
        raise ValueError("agent_type: expected the Byway agent type to call")
    tool_name = name or re.sub(r"\W", "_", agent_type)
    if not tool_name.isidentifier():
        raise ValueError(f"name: expected a valid function name, got {tool_name!r}")

    def call(request: str) -> dict[str, Any]:
        return {CALL_MARKER: {"agent_type": agent_type, "content": request, "timeout": timeout}}

    call.__name__ = tool_name
    call.__doc__ = description or (
        f"Ask the {agent_type} agent and wait for its answer.\n\n"
        "Args:\n    request: what to ask, in words."
    )
    return LongRunningFunctionTool(call)
