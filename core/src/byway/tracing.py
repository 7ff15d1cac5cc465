"""OpenTelemetry spans for tasks, calls and resumes, with W3C trace context carried in
each command header's ``metadata`` across every Redis hop.

Only the OpenTelemetry *API* is used: until a ``TracerProvider`` is installed (by a
trace-provider plugin, or by the application) every span is a no-op costing well under
a microsecond. With one installed, a tree of agents calling agents across processes is one
trace: a task's span is the child of the span that sent it (the client's, or the caller's
``byway.call`` span), and a resumed caller's span is the child of its call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

__all__ = ["active", "inject", "span", "task_span"]

_tracer = trace.get_tracer("byway")
#: the W3C keys carried in header metadata
_KEYS = ("traceparent", "tracestate")


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


@contextmanager
def task_span(name: str, metadata: dict[str, Any], attributes: dict[str, Any]) -> Iterator[Any]:
    """The span of one task run, child of the context its command carried."""
    with _tracer.start_as_current_span(
        name,
        context=_extract(metadata),
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
    ) as current:
        yield current


@contextmanager
def span(name: str, attributes: dict[str, Any]) -> Iterator[Any]:
    """A producer span (a call to another agent) under the current one."""
    with _tracer.start_as_current_span(
        name, kind=trace.SpanKind.PRODUCER, attributes=attributes
    ) as current:
        yield current
