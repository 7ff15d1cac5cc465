"""Each tool call a model makes, announced once, with its arguments.

A streamed reply brings its tool calls in fragments (``tool_call_chunks``: the name in one,
the arguments as JSON text split over many), so a call is announced when its reply is
complete: at the stream's last chunk, or from the whole message (a reply that was not
streamed, a node's update). Calls already announced are not announced again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk

__all__ = ["ToolCallAnnouncer"]

#: longest arguments' JSON a tool-call event carries whole: a call with more (a file's
#: content...) is shown cut, so that its event stays under the session's event limit (a
#: larger event would fail the run)
ARGS_SHOWN = 8000


class ToolCallAnnouncer:
    """Collects streamed fragments per reply; returns the calls not announced yet."""

    def __init__(self, announced: Iterable[str] = ()) -> None:
        self._partial: dict[str, AIMessageChunk] = {}
        #: calls announced already, by id, oldest first (``announced``: by the run before
        #: a suspension: a resumed node's update repeats the reply it reviewed)
        self._announced: dict[str, None] = dict.fromkeys(announced)

    def recent(self, limit: int = 100) -> list[str]:
        """The last calls announced, to carry over a suspension."""
        return list(self._announced)[-limit:]

    def on_message(self, message: Any) -> list[dict[str, Any]]:
        """The calls a ``messages`` stream item completes (none for a fragment)."""
        if isinstance(message, AIMessageChunk):
            key = str(message.id or "")
            if message.tool_call_chunks or key in self._partial:
                held = self._partial.get(key)
                self._partial[key] = message if held is None else held + message
            if message.chunk_position == "last" and key in self._partial:
                return self._new(self._partial.pop(key).tool_calls)
            return []
        if isinstance(message, AIMessage):
            return self._new(message.tool_calls)
        return []

    def on_update(self, update: Any) -> list[dict[str, Any]]:
        """The calls of the model replies in a node's state update."""
        messages = update.get("messages") if isinstance(update, dict) else None
        if isinstance(messages, AIMessage):
            messages = [messages]
        if not isinstance(messages, list):
            return []
        calls = [c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
        for message in messages:  # a reply now whole: its fragments are not needed
            if isinstance(message, AIMessage):
                self._partial.pop(str(message.id or ""), None)
        return self._new(calls)

    def _new(self, calls: list[Any]) -> list[dict[str, Any]]:
        out = []
        for call in calls:
            name = call.get("name")
            if not name:
                continue
            key = call.get("id") or f"{name}:{json.dumps(call.get('args'), default=str)}"
            if key in self._announced:
                continue
            self._announced[key] = None
            out.append({"id": call.get("id"), "name": name, **_shown_args(call.get("args") or {})})
        return out


def _shown_args(args: Any) -> dict[str, Any]:
    """``{"args": args}``, or for long ones their JSON text cut, marked ``args_cut``."""
    text = json.dumps(args, ensure_ascii=False, default=str)
    if len(text) <= ARGS_SHOWN:
        return {"args": args}
    return {"args": text[:ARGS_SHOWN] + "…", "args_cut": True}
