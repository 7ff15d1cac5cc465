"""How ``byway send --follow`` and ``byway stream`` print an event."""

from __future__ import annotations

import json
import sys
from typing import Any

from byway._log import escape_controls
from byway._prompt import render_ask
from byway.protocol import Event, EventType

__all__ = ["render_event"]


def render_event(event: Event, out: Any = sys.stdout, *, as_json: bool = False) -> None:
    """Print one event the way ``send --follow`` and ``stream`` show it."""
    if as_json:
        out.write(json.dumps({"id": event.id, **_event_dict(event)}, ensure_ascii=False) + "\n")
        out.flush()
        return
    kind = event.kind
    who = event.source_agent_type or "?"
    if kind == "chunk":
        text = event.data.get("content") or ""
        if event.event_type == EventType.REASONING_LOG_DELTA:
            out.write(f"\x1b[2m{text}\x1b[0m" if out.isatty() else text)
        else:
            out.write(text)
        for name in ("tool_calls", "function_call", "tool_responses", "function_response"):
            if event.data.get(name):
                out.write(f"\n[{who}] {name}: {json.dumps(event.data[name], ensure_ascii=False)}\n")
    elif kind == "state":
        out.write(f"\n[{who}] {event.data.get('state')}\n")
    elif kind == "artifact":
        out.write(f"\n[{who}] artifact: {event.data.get('url')}\n")
    elif kind == "ask_user":
        out.write(render_ask(who, event.message_id, event.data))
    elif kind == "answer_refused":
        reason = escape_controls(str(event.data.get("reason", "")))
        out.write(f"\n[{who}] answer to {event.message_id} refused: {reason}\n")
    elif kind == "final":
        status = event.data.get("status")
        error = event.data.get("error")
        line = f"\n[{who}] {status}"
        if error:
            line += f": {error.get('type')}: {error.get('message')}"
        out.write(line + "\n")
    elif kind == "end":
        pass
    else:
        out.write(f"\n[{who}] {event.event_type}: {json.dumps(event.data, ensure_ascii=False)}\n")
    out.flush()


def _event_dict(event: Event) -> dict[str, Any]:
    import msgspec

    data: dict[str, Any] = msgspec.to_builtins(event)
    data.pop("id", None)
    return data
