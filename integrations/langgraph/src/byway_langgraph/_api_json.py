"""Graph values rendered as the LangGraph Server API shows them: JSON, nothing else.

A chunk ``graph.astream`` yields may hold messages, interrupts, ``Send`` packets, Pydantic
models, dataclasses, exceptions, datetimes... LangGraph Server writes them with their
``model_dump()`` (messages as ``{"content", "type", "id", ...}``), dataclasses field by
field, an exception as ``{"error", "message"}``. :func:`to_json` does the same, in plain
Python types only, and bounded: nesting past :data:`MAX_DEPTH`, and any object it does
not know, become text.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import math
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

__all__ = ["MAX_DEPTH", "to_json"]

#: deeper than this, a value is shown as text
MAX_DEPTH = 48
#: the longest text an unknown object becomes
_TEXT_MAX = 2000


def to_json(value: Any, _depth: int = 0) -> Any:
    """``value`` as JSON-safe Python (dicts, lists, str, int, float, bool, None)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if _depth >= MAX_DEPTH:
        return _text(value)
    deeper = _depth + 1
    if isinstance(value, Mapping):
        return {str(k): to_json(v, deeper) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        if isinstance(value, tuple) and hasattr(value, "_asdict"):  # a NamedTuple
            return to_json(value._asdict(), deeper)
        return [to_json(v, deeper) for v in value]
    return _object(value, deeper)


def _object(value: Any, depth: int) -> Any:
    from langgraph.types import Interrupt, Send

    if isinstance(value, Interrupt):
        schema = value.response_schema if isinstance(value.response_schema, dict) else None
        return {
            "value": to_json(value.value, depth),
            "id": value.id,
            "response_schema": to_json(schema, depth),
        }
    if isinstance(value, Send):
        return {"node": value.node, "args": to_json(value.arg, depth)}
    if isinstance(value, BaseModel):  # messages, documents, a graph's own models
        try:
            dumped = value.model_dump()
        except Exception:
            return _text(value)
        return to_json(dumped, depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_json(getattr(value, f.name, None), depth) for f in dataclasses.fields(value)
        }
    if isinstance(value, BaseException):
        return {"error": type(value).__name__, "message": _text(value)}
    if isinstance(value, enum.Enum):
        return to_json(value.value, depth)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    return _text(value)


def _text(value: Any) -> str:
    try:
        text = str(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text[:_TEXT_MAX]
