"""Building blocks of trace-provider plugins (``byway-trace-langfuse``,
``byway-trace-phoenix``). Needs ``opentelemetry-sdk``: ``pip install "byway[otel]"``, which
those plugins depend on.

:class:`TracePlugin` does what every such plugin does the same way:

- builds one SDK ``TracerProvider`` per worker process with a parent-based ratio sampler
  (a request is traced whole or not at all, whichever worker it crosses) and installs it,
  or joins the provider another trace plugin already built, so Langfuse and Phoenix can
  both receive the same spans;
- stamps every span started inside a task with the task's ``session.id`` and ``user.id``
  (:class:`InheritTaskAttributes`), so a framework's LLM and tool spans are grouped by
  session and user as well as the task span;
- hides inputs and/or outputs at export (:class:`RedactingExporter`, :func:`hidden_keys`)
  when :class:`TraceOptions` ask for it, by key pattern (:mod:`byway._span_redact`);
- flushes on worker shutdown.

Subclasses say whether they are configured (raise :class:`~byway.plugins.PluginDeclined`
in ``__init__`` otherwise), add their exporting processors and instrument the frameworks
already imported in the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from opentelemetry.context import Context
from opentelemetry.trace import Status

try:  # the SDK: not a dependency of the core, but of its `otel` extra (the trace plugins')
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
except ImportError as exc:
    raise ImportError(
        "byway.telemetry needs the OpenTelemetry SDK, which the core does not install: "
        f'pip install "byway[otel]" (or a trace plugin, e.g. "byway[langfuse]"); {exc}'
    ) from exc

from byway import _span_redact, tracing
from byway._log import get_logger
from byway.errors import ConfigurationError
from byway.plugins import Plugin, PluginBuildContext, PluginDeclined

__all__ = [
    "InheritTaskAttributes",
    "RedactingExporter",
    "TraceOptions",
    "TracePlugin",
    "hidden_keys",
]

log = get_logger("byway.telemetry")

SAMPLE_ENV = "BYWAY_TRACE_SAMPLE_RATIO"
HIDE_INPUTS_ENV = "BYWAY_TRACE_HIDE_INPUTS"
HIDE_OUTPUTS_ENV = "BYWAY_TRACE_HIDE_OUTPUTS"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigurationError(f"{name}: expected true or false, got {raw!r}")


@dataclass(frozen=True, slots=True)
class TraceOptions:
    """Volume and privacy: ``sample_ratio`` of requests traced (0..1; a request's spans
    are kept or dropped together), and whether inputs and outputs leave the process."""

    sample_ratio: float = 1.0
    hide_inputs: bool = False
    hide_outputs: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ConfigurationError(
                f"sample_ratio: expected a number from 0 to 1, got {self.sample_ratio!r}"
            )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, sample_fallback: str = ""
    ) -> TraceOptions:
        """From ``BYWAY_TRACE_SAMPLE_RATIO`` (else ``sample_fallback``, a provider's own
        variable), ``BYWAY_TRACE_HIDE_INPUTS`` and ``BYWAY_TRACE_HIDE_OUTPUTS``."""
        env = os.environ if environ is None else environ
        name = SAMPLE_ENV if env.get(SAMPLE_ENV) or not sample_fallback else sample_fallback
        raw = env.get(name, "").strip()
        try:
            ratio = float(raw) if raw else 1.0
        except ValueError:
            raise ConfigurationError(
                f"{name}: expected a number from 0 to 1, got {raw!r}"
            ) from None
        if not 0.0 <= ratio <= 1.0:
            raise ConfigurationError(f"{name}: expected a number from 0 to 1, got {raw!r}")
        return cls(
            sample_ratio=ratio,
            hide_inputs=_flag(env, HIDE_INPUTS_ENV),
            hide_outputs=_flag(env, HIDE_OUTPUTS_ENV),
        )

    @property
    def hides(self) -> bool:
        return self.hide_inputs or self.hide_outputs

    def sampler(self) -> Sampler:
        """Sample new traces at ``sample_ratio``; follow the parent's decision otherwise."""
        return ParentBased(TraceIdRatioBased(self.sample_ratio))


def hidden_keys(
    attributes: Mapping[str, Any] | None,
    options: TraceOptions,
    *,
    span_name: str = "",
    scope: str = "",
) -> list[str]:
    """The names of ``attributes`` (of the span ``span_name``, instrumentation scope
    ``scope``) that ``options`` keep from export, by key pattern (:mod:`byway._span_redact`
    has the rules)."""
    return _span_redact.hidden(
        attributes,
        inputs=options.hide_inputs,
        outputs=options.hide_outputs,
        span_name=span_name,
        scope=scope,
    )


class InheritTaskAttributes(SpanProcessor):
    """Stamps each span started inside a Byway task with the task's ``session.id`` and
    ``user.id``; Byway's own spans also get ``task_attributes`` / ``call_attributes``
    (a back end's span kind, for instance)."""

    def __init__(
        self,
        task_attributes: Mapping[str, str] | None = None,
        call_attributes: Mapping[str, str] | None = None,
    ) -> None:
        self.task_attributes = dict(task_attributes or {})
        self.call_attributes = dict(call_attributes or {})

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        scope = span.instrumentation_scope
        if scope is not None and scope.name == "byway":
            if not span.name.startswith("byway.call"):
                span.set_attributes(self.task_attributes)
                return  # a task span is stamped by byway.tracing itself
            span.set_attributes(self.call_attributes)
        # instrumentations often pass a context of their own making (their parent span
        # only): the task's attributes are then in the current one
        shared = tracing.inherited(parent_context) or tracing.inherited()
        if shared:
            span.set_attributes(shared)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class RedactingExporter(SpanExporter):
    """Hands ``exporter`` copies of the spans without what ``options`` hide, and none of
    the spans of the instrumentation scopes in ``skip_scopes`` (another back end's own)."""

    def __init__(
        self, exporter: SpanExporter, options: TraceOptions, skip_scopes: Iterable[str] = ()
    ) -> None:
        self.exporter = exporter
        self.options = options
        self.skip_scopes = frozenset(skip_scopes)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.skip_scopes:
            spans = [s for s in spans if _scope(s) not in self.skip_scopes]
        if not self.options.hides:
            return self.exporter.export(spans)
        return self.exporter.export([self._redacted(s) for s in spans])

    def _redacted(self, span: ReadableSpan) -> ReadableSpan:
        """The span without hidden attributes, in itself and its events (an exception's
        message, a GenAI content event's text), and without its status description (an
        error message)."""
        attributes = span.attributes or {}
        hidden = hidden_keys(attributes, self.options, span_name=span.name, scope=_scope(span))
        kind = _span_redact.kind_of(attributes)
        events = [self._redacted_event(e, kind) for e in span.events]
        status = span.status
        if status.description:
            status = Status(status.status_code)
        if (
            not hidden
            and status is span.status
            and all(a is b for a, b in zip(events, span.events, strict=True))
        ):
            return span
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes={k: v for k, v in attributes.items() if k not in hidden},
            events=events,
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def _redacted_event(self, event: Event, kind: str) -> Event:
        attributes = event.attributes or {}
        drop = _span_redact.hidden(
            attributes,
            inputs=self.options.hide_inputs,
            outputs=self.options.hide_outputs,
            event_name=event.name,
            kind=kind,
        )
        if not drop:
            return event
        kept = {k: v for k, v in attributes.items() if k not in drop}
        return Event(event.name, kept, event.timestamp)

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class _DemoteForeignDetach(logging.Filter):
    """OpenTelemetry logs an ERROR with a traceback when a span's context is detached in
    another context than it was attached in: an instrumented async generator that its
    framework finalizes from another task (OpenInference's ADK agent spans, when an
    invocation pauses at a long-running call). The span still ends and exports whole, so
    that case is logged at DEBUG instead; every other detach failure stays an ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not (isinstance(exc, ValueError) and "created in a different Context" in str(exc)):
            return True
        tb = exc.__context__.__traceback__ if exc.__context__ is not None else None
        frames = traceback.extract_tb(tb) if tb is not None else []
        if not any("openinference" in frame.filename for frame in frames):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_demote = _DemoteForeignDetach()


def _scope(span: ReadableSpan) -> str:
    scope = span.instrumentation_scope
    return scope.name if scope is not None else ""


#: the frameworks trace plugins instrument, by the module that shows a worker uses it
FRAMEWORKS = ("langchain_core", "google.adk")


def imported(module: str) -> bool:
    """Whether the worker's code already imported ``module`` (a framework to instrument:
    importing one the worker does not use would only slow its start)."""
    return module in sys.modules


class TracePlugin(Plugin):
    """Base of trace-provider plugins; see the module docstring."""

    #: attributes for Byway's task and call spans in the back end's terms
    task_attributes: ClassVar[Mapping[str, str]] = {"openinference.span.kind": "AGENT"}
    call_attributes: ClassVar[Mapping[str, str]] = {"openinference.span.kind": "CHAIN"}
    #: seconds one export may take (exporters get it as their timeout), and the longest
    #: a worker's shutdown waits for the last spans to leave
    export_seconds: ClassVar[float] = 3.0

    def __init__(self, options: TraceOptions | None = None) -> None:
        self.options = options or TraceOptions.from_env()
        self.provider: TracerProvider | None = None
        #: whether this plugin built the provider (and so shuts it down)
        self.owns_provider = False

    def resource_attributes(self) -> dict[str, str]:
        """Resource attributes of a provider this plugin builds."""
        return {"service.name": os.environ.get("OTEL_SERVICE_NAME") or "byway-worker"}

    def processors(self, provider: TracerProvider) -> Iterable[SpanProcessor]:
        """The processors that send spans to this back end."""
        return ()

    def instrument(self, provider: TracerProvider, frameworks: set[str]) -> None:
        """Instrument ``frameworks`` (the modules of :data:`FRAMEWORKS` the worker had
        imported when tracing was set up), once per process."""

    async def setup(self, ctx: PluginBuildContext) -> None:
        if self.provider is not None:  # a reload: the provider and exporters stay
            ctx.set_tracer_provider(self.provider)
            return
        # before any tracing library is imported (Langfuse's imports LangChain)
        frameworks = {module for module in FRAMEWORKS if imported(module)}
        shared = ctx.tracer_provider
        if isinstance(shared, TracerProvider):
            provider = shared
            log.info(
                "%s joins the tracer provider already installed (its sampling applies)",
                self.manifest.id,
            )
        else:
            # shut down by on_worker_shutdown within a bound, not by an exit handler
            provider = TracerProvider(
                sampler=self.options.sampler(),
                resource=Resource.create(self.resource_attributes()),
                shutdown_on_exit=False,
            )
        try:
            provider.add_span_processor(
                InheritTaskAttributes(self.task_attributes, self.call_attributes)
            )
            for processor in self.processors(provider):
                provider.add_span_processor(processor)
            self.provider, self.owns_provider = provider, provider is not shared
            self.instrument(provider, frameworks)
        except Exception as exc:
            # tracing must never keep a worker from serving: this plugin stands down
            log.error("%s could not set up tracing: %s: %s", self.manifest.id,
                      type(exc).__name__, exc)  # fmt: skip
            raise PluginDeclined(f"set-up failed: {exc}") from exc
        context_log = logging.getLogger("opentelemetry.context")
        if _demote not in context_log.filters:
            context_log.addFilter(_demote)
        ctx.set_tracer_provider(provider)
        log.info(
            "%s tracing on (sample ratio %s%s)",
            self.manifest.id,
            self.options.sample_ratio,
            ", inputs/outputs hidden" if self.options.hides else "",
        )

    async def on_worker_shutdown(self, info: Any) -> None:
        """Send the last spans and shut the provider down, within ``export_seconds``
        (a back end that is down must not hold the worker's exit)."""
        provider = self.provider
        if provider is None or not self.owns_provider:
            return
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def stop() -> None:
            try:
                provider.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(done.set)

        # a daemon thread, not the executor: left behind, it holds neither the loop's
        # close nor the process's exit
        threading.Thread(target=stop, name="byway-trace-shutdown", daemon=True).start()
        try:
            await asyncio.wait_for(done.wait(), self.export_seconds + 0.5)
        except TimeoutError:
            log.warning("%s: the last spans did not leave in time", self.manifest.id)
