"""Tool calls a stopped run left unanswered, closed so that the thread stays usable.

A run cancelled (or killed) while its tools run keeps its last checkpoint: an assistant
message whose ``tool_calls`` have no tool messages. Every chat API refuses such a history
("an assistant message with 'tool_calls' must be followed by tool messages"), and so does
LangGraph's prebuilt agent (INVALID_CHAT_HISTORY), so each later turn of the session would
fail. Closing them writes one tool message per open call, marked as an error that says it
was cancelled, as if the thread's tool node had answered, then ends the stopped step: the
model is not called again for the cancelled run, and the next message starts from a
consistent conversation. Results of tools that did finish in that step are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolCall, ToolMessage
from langgraph.constants import END
from langgraph.types import StateUpdate

__all__ = ["CANCELLED", "close_open_calls", "open_calls"]

#: the ``status`` of a ``tool_responses`` entry for a call closed this way
CANCELLED = "cancelled"


def open_calls(messages: Sequence[Any]) -> list[ToolCall]:
    """The tool calls of the last assistant message that no later tool message answers."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, AIMessage):
            answered = {m.tool_call_id for m in messages[index + 1 :] if isinstance(m, ToolMessage)}
            return [c for c in message.tool_calls if c.get("id") not in answered]
    return []


def _tools_node(graph: Any) -> str | None:
    """The node that answers tool calls: a ``ToolNode`` (both prebuilt agents name it
    ``tools``), else a node called ``tools``; None lets LangGraph pick the last writer."""
    from langgraph.prebuilt import ToolNode

    nodes = getattr(graph, "nodes", {}) or {}
    for name, node in nodes.items():
        if isinstance(getattr(node, "bound", None), ToolNode):
            return str(name)
    return "tools" if "tools" in nodes else None


def _messages(values: Any) -> list[BaseMessage]:
    found = values.get("messages") if isinstance(values, dict) else None
    return list(found) if isinstance(found, list) else []


async def close_open_calls(graph: Any, thread: dict[str, Any], reason: str) -> list[dict[str, Any]]:
    """Answer the open tool calls of ``thread`` (a config naming only the thread) with
    cancelled tool messages; the ``tool_responses`` entries that say so (none if the
    thread had no open call)."""
    state = await graph.aget_state(thread)
    if not open_calls(_messages(state.values)):
        return []
    if state.next:
        # end the stopped step: what its finished tasks wrote is applied (a parallel
        # call that did answer keeps its result), the unfinished tasks are dropped
        await graph.aupdate_state(thread, None, as_node=END)
        state = await graph.aget_state(thread)
    calls = open_calls(_messages(state.values))
    if not calls:
        return []
    content = reason if reason.startswith("cancelled") else f"cancelled: {reason}"
    answers = [
        ToolMessage(content=content, tool_call_id=str(c["id"]), name=c.get("name"), status="error")
        for c in calls
    ]
    await graph.abulk_update_state(
        thread,
        [
            [StateUpdate({"messages": answers}, _tools_node(graph))],
            [StateUpdate(None, END)],  # the cancelled run does not call its model again
        ],
    )
    return [
        {"name": c.get("name"), "id": c.get("id"), "content": content, "status": CANCELLED}
        for c in calls
    ]
