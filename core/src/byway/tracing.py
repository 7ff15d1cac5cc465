"""OpenTelemetry spans for tasks, calls and resumes, with W3C trace context carried in
each command header's ``metadata`` across every Redis hop.

Only the OpenTelemetry *API* is used: until a ``TracerProvider`` is installed (by a
trace-provider plugin, or by the application) every span is a no-op costing well under
a microsecond. With one installed, a tree of agents calling agents across processes is one
trace: a task's span is the child of the span that sent it (the client's, or the caller's
``byway.call`` span), and a resumed caller's span is the child of its call.

A task span also carries the names trace back ends of the field read (OpenInference's,
which Langfuse and Phoenix both use): ``session.id`` (the Byway session), ``user.id`` (the
user code), ``input.value`` and ``output.value``. ``session.id`` and ``user.id`` are also
put in the context, so a processor (:mod:`byway.telemetry`) can stamp them on every span
started inside the task: a framework's LLM and tool spans included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Status, StatusCode

__all__ = [
    "INPUT",
    "OUTPUT",
    "SESSION_ID",
    "USER_ID",
    "active",
    "inherited",
    "inject",
    "record_outcome",
    "span",
    "task_span",
    "text",
]

SESSION_ID = "session.id"
USER_ID = "user.id"
INPUT = "input.value"
OUTPUT = "output.value"
#: a task's input and output are cut to this many characters on its span
TEXT_LIMIT = 16_384

_tracer = trace.get_tracer("byway")
#: the W3C keys carried in header metadata
_KEYS = ("traceparent", "tracestate")
#: the task's ``session.id``/``user.id``, for every span started inside it
_INHERITED = otel_context.create_key("byway.inherited-attributes")
_encode = msgspec.json.Encoder().encode


def active() -> bool:
    """Whether the current span records (a provider is installed and sampled it)."""
    return bool(trace.get_current_span().get_span_context().is_valid)


def inject(metadata: dict[str, Any]) -> dict[str, Any]:
    """Write the current trace context into ``metadata`` (in place) and return it."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    metadata.update(carrier)
    return metadata


def _extract(metadata: dict[str, Any]) -> otel_context.Context | None:
    if "traceparent" not in metadata:
        return None
    return propagate.extract({k: str(metadata[k]) for k in _KEYS if k in metadata})


def inherited(context: otel_context.Context | None = None) -> dict[str, str] | None:
    """The ``session.id``/``user.id`` of the task whose span ``context`` is in, if any."""
    value = otel_context.get_value(_INHERITED, context)
    return value if isinstance(value, dict) else None


def text(content: Any) -> str:
    """``content`` as span text: itself when a string, else JSON; cut at TEXT_LIMIT."""
    out = content if isinstance(content, str) else _encode(content).decode()
    return out if len(out) <= TEXT_LIMIT else out[:TEXT_LIMIT] + "…"


@contextmanager
def task_span(
    name: str,
    metadata: dict[str, Any],
    attributes: dict[str, Any],
    *,
    session_id: str = "",
    user_id: str = "",
    content: Any = None,
) -> Iterator[Any]:
    """The span of one task run, child of the context its command carried.

    When it records, it carries ``session.id``, ``user.id`` and ``input.value``
    (``content``), and spans started inside it inherit the first two."""
    with _tracer.start_as_current_span(
        name,
        context=_extract(metadata),
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
    ) as current:
        if not current.is_recording():
            yield current
            return
        shared = {SESSION_ID: session_id}
        if user_id:
            shared[USER_ID] = user_id
        current.set_attributes(shared)
        if content is not None:
            try:
                current.set_attribute(INPUT, text(content))
            except (TypeError, msgspec.EncodeError):
                pass  # not JSON: the span goes without its input
        # also under the names OpenInference instrumentations read from the context, so
        # theirs take the Byway session rather than a framework's own id
        context = otel_context.set_value(_INHERITED, shared)
        for key, value in shared.items():
            context = otel_context.set_value(key, value, context)
        token = otel_context.attach(context)
        try:
            yield current
        finally:
            otel_context.detach(token)


def record_outcome(
    current: Any, status: str, content: Any = None, error: dict[str, str] | None = None
) -> None:
    """Write on a task's span how its run ended: ``byway.status``, ``output.value`` and,
    for a failure, an error status."""
    if not current.is_recording():
        return
    current.set_attribute("byway.status", status)
    if content is not None and content != "":
        try:
            current.set_attribute(OUTPUT, text(content))
        except (TypeError, msgspec.EncodeError):
            pass
    if error is not None and status == "FAILED":
        current.set_status(Status(StatusCode.ERROR, f"{error['type']}: {error['message']}"))


@contextmanager
def span(name: str, attributes: dict[str, Any]) -> Iterator[Any]:
    """A producer span (a call to another agent) under the current one."""
    with _tracer.start_as_current_span(
        name, kind=trace.SpanKind.PRODUCER, attributes=attributes
    ) as current:
        yield current
