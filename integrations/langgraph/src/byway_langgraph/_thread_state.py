"""A thread's state as the LangGraph Server API shows it, recorded when a run stops.

The worker has the graph, the server does not: so when a run served through the API
stops (its end, an interrupt, an error, a cancel) or a state update is made, the worker
writes the thread's ``StateSnapshot`` rendered as JSON (``values``, ``next``, ``tasks``,
``interrupts``, ``checkpoint``, ``metadata``, ``created_at``, ``parent_checkpoint``)
with :func:`byway_langgraph._api_records.put_thread_state`, and any replica answers
``GET /threads/{id}/state`` from it.

The record is bounded (:data:`MAX_STATE_BYTES`): a state larger than that is recorded
without its ``values`` (``values_in_checkpoint`` set), and the server reads them from the
checkpoint instead. :func:`api_json` is the rendering: messages and other models as
their ``model_dump()``, dataclasses as their fields, interrupts as ``{id, value}``,
``Send`` as ``{node, args}``, times as ISO strings, anything else it cannot show as null.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import uuid
from collections import deque
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import msgspec

from byway._log import get_logger
from byway.keys import Keys
from byway_langgraph._api_records import now_ms, put_thread_state

__all__ = [
    "MAX_STATE_BYTES",
    "api_json",
    "checkpoint_ref",
    "record_thread_state",
    "render_interrupt",
    "render_snapshot",
]

log = get_logger("byway.langgraph")

#: the largest state record (JSON bytes) written with its values
MAX_STATE_BYTES = 4 * 1024 * 1024
#: how deep a value is rendered (deeper parts: null)
MAX_DEPTH = 100
#: a task's error is shown up to this many characters
_ERROR_CHARS = 2000

_enc = msgspec.json.Encoder()


def api_json(value: Any, _depth: int = 0) -> Any:
    """``value`` as JSON-safe data, the way the LangGraph Server API shows graph values."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if _depth > MAX_DEPTH:
        return None
    deeper = _depth + 1
    if isinstance(value, Mapping):
        return {str(k): api_json(v, deeper) for k, v in value.items()}
    if isinstance(value, (list, set, frozenset, deque)):
        return [api_json(v, deeper) for v in value]
    if isinstance(value, tuple):
        if hasattr(value, "_asdict"):  # a named tuple: its fields
            return api_json(value._asdict(), deeper)
        return [api_json(v, deeper) for v in value]
    return _special(value, deeper)


def _special(value: Any, depth: int) -> Any:
    from langgraph.types import Interrupt, Send

    if isinstance(value, Interrupt):
        return render_interrupt(value)
    if isinstance(value, Send):
        return {"node": value.node, "args": api_json(value.arg, depth)}
    if isinstance(value, type):
        return None
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic v2 (LangChain's messages among them)
        return api_json(dump(), depth)
    if dataclasses.is_dataclass(value):
        return {f.name: api_json(getattr(value, f.name), depth) for f in dataclasses.fields(value)}
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return api_json(value.value, depth)
    if isinstance(value, (uuid.UUID, PurePath)):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, BaseException):
        return {"error": type(value).__name__, "message": str(value)[:_ERROR_CHARS]}
    return None


def render_interrupt(interrupt: Any) -> dict[str, Any]:
    """An interrupt as the API shows it: ``{"id", "value"}`` (and ``response_schema``)."""
    if isinstance(interrupt, Mapping):
        found = {"id": interrupt.get("id"), "value": interrupt.get("value")}
        schema = interrupt.get("response_schema")
    else:
        found = {"id": getattr(interrupt, "id", None), "value": getattr(interrupt, "value", None)}
        schema = getattr(interrupt, "response_schema", None)
    out = {"id": api_json(found["id"]), "value": api_json(found["value"])}
    if schema is not None:
        out["response_schema"] = api_json(schema)
    return out


def checkpoint_ref(config: Any) -> dict[str, Any] | None:
    """The ``Checkpoint`` a config names (``thread_id``, ``checkpoint_ns``,
    ``checkpoint_id``, and ``checkpoint_map`` if it has one), or None without an id."""
    conf = config.get("configurable") if isinstance(config, Mapping) else None
    if not isinstance(conf, Mapping) or not conf.get("thread_id") or not conf.get("checkpoint_id"):
        return None
    ref = {
        "thread_id": str(conf["thread_id"]),
        "checkpoint_ns": str(conf.get("checkpoint_ns") or ""),
        "checkpoint_id": str(conf["checkpoint_id"]),
    }
    if conf.get("checkpoint_map"):
        ref["checkpoint_map"] = api_json(conf["checkpoint_map"])
    return ref


def _error_text(error: Any) -> str | None:
    if error is None:
        return None
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    else:
        text = str(error)
    return text[:_ERROR_CHARS]


def render_snapshot(snapshot: Any) -> dict[str, Any]:
    """A LangGraph ``StateSnapshot`` as the API's ``ThreadState`` (a subgraph task's
    state nested in ``tasks[].state`` when the snapshot has it)."""
    tasks = []
    for task in snapshot.tasks:
        nested = task.state
        is_snapshot = nested is not None and hasattr(nested, "tasks")
        tasks.append(
            {
                "id": str(task.id),
                "name": str(task.name),
                "error": _error_text(task.error),
                "interrupts": [render_interrupt(i) for i in task.interrupts],
                "checkpoint": (
                    api_json(nested.get("configurable")) if isinstance(nested, Mapping) else None
                ),
                "state": render_snapshot(nested) if is_snapshot else None,
                "result": api_json(getattr(task, "result", None)),
            }
        )
    return {
        "values": api_json(snapshot.values),
        "next": [str(n) for n in snapshot.next],
        "tasks": tasks,
        "metadata": api_json(snapshot.metadata) or {},
        "created_at": snapshot.created_at,
        "checkpoint": checkpoint_ref(snapshot.config),
        "parent_checkpoint": checkpoint_ref(snapshot.parent_config),
        "interrupts": [render_interrupt(i) for i in getattr(snapshot, "interrupts", ())],
    }


def _without_nested(state: dict[str, Any]) -> None:
    """Replace nested subgraph states by the checkpoint they are at (to save room)."""
    for task in state.get("tasks", []):
        nested = task.get("state")
        if isinstance(nested, dict):
            ref = nested.get("checkpoint") or {}
            task["state"] = None
            task["checkpoint"] = {
                "thread_id": ref.get("thread_id"),
                "checkpoint_ns": ref.get("checkpoint_ns", ""),
            }


async def record_thread_state(
    redis: Any, keys: Keys, thread_id: str, graph: Any, config: Any
) -> dict[str, Any] | None:
    """Write ``thread_id``'s latest state (``graph.aget_state``, subgraphs included) to
    its record; returns what was written, or None if the state could not be read (the
    reason is logged: a run must not fail for its record)."""
    conf = dict((config or {}).get("configurable") or {})
    for key in ("checkpoint_id", "checkpoint_ns", "checkpoint_map"):
        conf.pop(key, None)  # the latest state, wherever the run started from
    conf["thread_id"] = thread_id
    try:
        snapshot = await graph.aget_state({"configurable": conf}, subgraphs=True)
        state = render_snapshot(snapshot)
    except Exception as exc:
        log.warning("thread %s: state not recorded (%s: %s)", thread_id, type(exc).__name__, exc)
        return None
    if len(_enc.encode(state)) > MAX_STATE_BYTES:
        _without_nested(state)
    if len(_enc.encode(state)) > MAX_STATE_BYTES:
        state["values"] = None
        state["values_in_checkpoint"] = True
    state["recorded_at"] = now_ms()
    await put_thread_state(redis, keys, thread_id, state)
    return state
