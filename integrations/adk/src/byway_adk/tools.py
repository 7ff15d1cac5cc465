"""An ADK tool that asks another Byway agent: a LangGraph graph, another ADK agent, a
plain handler.

The tool is an ADK long-running tool. The model calls it; the tool answers "pending"
at once, and the worker serving the agent pauses the invocation there, frees its slot,
and asks the other agent through Byway. The callee's reply comes back as the function
response of the same call (same id and name), on whichever worker takes the reply, and
the model goes on from it.

:func:`idempotency_key` names one tool call for the systems a tool writes to: a tool that
was running when its worker died runs again on the worker that takes the task over
(at-least-once), with the same key.
"""

from __future__ import annotations

import re
from typing import Any

from google.adk.tools.long_running_tool import LongRunningFunctionTool

__all__ = ["CALL_MARKER", "EXECUTION_ID_KEY", "agent_tool", "execution_id", "idempotency_key"]

#: key of the function response that asks the worker to call another agent
CALL_MARKER = "byway_call"
#: key of the Byway execution id in the invocation's ``RunConfig.custom_metadata``
EXECUTION_ID_KEY = "byway_execution_id"


def execution_id(tool_context: Any) -> str:
    """The Byway execution a tool runs in ("" outside a Byway worker).

    It is the same for every run of one task: the first, a resume on another worker,
    and a run again after a worker died.
    """
    config = getattr(tool_context, "run_config", None)
    metadata = getattr(config, "custom_metadata", None) or {}
    return str(metadata.get(EXECUTION_ID_KEY) or "")


def idempotency_key(tool_context: Any) -> str:
    """``<execution id>:<function call id>``: one key per tool call, the same when the
    call runs again after a crash.

    A tool whose worker dies while it runs is run again (at-least-once); a tool with a
    side effect passes this key to the system it writes to (a payment API's idempotency
    key, a unique column) so that the second run does not repeat the effect.
    """
    call_id = str(getattr(tool_context, "function_call_id", None) or "")
    if not call_id:
        raise ValueError(
            "tool_context: expected the ToolContext of a tool call (function_call_id is unset)"
        )
    return f"{execution_id(tool_context)}:{call_id}"


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
