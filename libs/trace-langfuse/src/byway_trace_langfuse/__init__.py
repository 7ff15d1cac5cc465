"""Langfuse tracing for Byway workers.

Install ``byway-trace-langfuse`` and set Langfuse's usual ``LANGFUSE_PUBLIC_KEY``,
``LANGFUSE_SECRET_KEY`` and ``LANGFUSE_BASE_URL`` (or ``LANGFUSE_HOST``); every worker then
sends one trace per user request to Langfuse through the Langfuse SDK: each task, call and
resume as an agent observation, LangGraph's LLM calls as generations (model, tokens, cost)
through Langfuse's LangChain callback handler, and Google ADK agents' spans through the
OpenInference instrumentation. Langfuse's session id is the Byway session and its user id
the user code. Without the keys (or with ``LANGFUSE_TRACING_ENABLED=false``) the plugin
declines quietly.

Byway's ``BYWAY_TRACE_SAMPLE_RATIO`` (else ``LANGFUSE_SAMPLE_RATE``),
``BYWAY_TRACE_HIDE_INPUTS`` and ``BYWAY_TRACE_HIDE_OUTPUTS`` apply (``byway.telemetry``).
"""

from __future__ import annotations

import base64
import contextvars
import os
from collections.abc import Iterable
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, ClassVar

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from byway import tracing
from byway.plugins import PluginDeclined, PluginManifest
from byway.telemetry import RedactingExporter, TraceOptions, TracePlugin

if TYPE_CHECKING:
    from byway.context import AgentContext
    from byway.protocol import AgentTaskResult

__all__ = ["LangfusePlugin"]

__version__ = "0.1.0"

KEY_ENVS = ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY")

#: the LangChain callback handler every LangChain run of the process gets (set once)
_handler: contextvars.ContextVar[Any] | None = None


class LangfusePlugin(TracePlugin):
    """Sends the worker's spans to Langfuse; see the module docstring."""

    manifest: ClassVar[PluginManifest] = PluginManifest(
        "trace-langfuse",
        version=__version__,
        priority=50,
        description="traces to Langfuse",
    )
    task_attributes: ClassVar[dict[str, str]] = {
        "openinference.span.kind": "AGENT",
        "langfuse.observation.type": "agent",
    }

    def __init__(self, options: TraceOptions | None = None) -> None:
        missing = [name for name in KEY_ENVS if not os.environ.get(name)]
        if missing:
            raise PluginDeclined(f"{' and '.join(missing)} not set")
        if os.environ.get("LANGFUSE_TRACING_ENABLED", "").strip().lower() in {"false", "0"}:
            raise PluginDeclined("LANGFUSE_TRACING_ENABLED is false")
        super().__init__(options or TraceOptions.from_env(sample_fallback="LANGFUSE_SAMPLE_RATE"))
        self.client: Any = None

    def processors(self, provider: TracerProvider) -> Iterable[SpanProcessor]:
        from langfuse import Langfuse

        # the client adds its own span processor (batching, export filter, media) to the
        # provider it is given; the exporter at its end is ours, so hidden inputs and
        # outputs leave no trace in attributes, events or statuses, and an export that
        # hangs gives up after export_seconds
        self.client = Langfuse(
            tracer_provider=provider,
            should_export_span=_exported,
            span_exporter=RedactingExporter(self._exporter(), self.options),
            timeout=int(self.export_seconds),
        )
        return ()

    def _exporter(self) -> OTLPSpanExporter:
        """OTLP/HTTP to Langfuse's endpoint, with the headers the Langfuse SDK sends."""
        public, secret = (os.environ[name] for name in KEY_ENVS)
        base = (
            os.environ.get("LANGFUSE_BASE_URL")
            or os.environ.get("LANGFUSE_HOST")
            or "https://cloud.langfuse.com"
        ).rstrip("/")
        path = os.environ.get("LANGFUSE_OTEL_TRACES_EXPORT_PATH") or "api/public/otel/v1/traces"
        auth = base64.b64encode(f"{public}:{secret}".encode()).decode("ascii")
        return OTLPSpanExporter(
            endpoint=f"{base}/{path.lstrip('/')}",
            headers={
                "Authorization": f"Basic {auth}",
                "x-langfuse-sdk-name": "python",
                "x-langfuse-sdk-version": version("langfuse"),
                "x-langfuse-public-key": public,
            },
            timeout=self.export_seconds,
        )

    def instrument(self, provider: TracerProvider, frameworks: set[str]) -> None:
        global _handler
        if "langchain_core" in frameworks and _handler is None:
            from langchain_core.tracers.context import register_configure_hook
            from langfuse.langchain import CallbackHandler

            # a context variable whose default is the handler: every run in every task
            # of the process has it, and nested runs are not given a second one
            handler = CallbackHandler()
            _handler = contextvars.ContextVar("byway_langfuse_handler", default=handler)
            register_configure_hook(_handler, inheritable=True)
        if "google.adk" in frameworks:
            from openinference.instrumentation.google_adk import GoogleADKInstrumentor

            adk = GoogleADKInstrumentor()
            if not adk.is_instrumented_by_opentelemetry:
                adk.instrument(tracer_provider=provider)

    async def on_task_complete(self, ctx: AgentContext, result: AgentTaskResult) -> None:
        """A root task's answer is the trace's output (its first run, the trace's root
        span, may have suspended: the answer then comes from a resumed run)."""
        if ctx.is_root and result.content:
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attribute("langfuse.trace.output", tracing.text(result.content))


def _exported(span: ReadableSpan) -> bool:
    """Langfuse's own choice (its SDK's spans, GenAI and known LLM instrumentations) and
    Byway's task, call and resume spans."""
    from langfuse.span_filter import is_default_export_span

    scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
    if scope == "byway":
        return True
    # LangChain runs reach Langfuse through its own handler; OpenInference's spans of the
    # same runs (the Phoenix plugin's, on a shared provider) would count every call twice
    return scope != "openinference.instrumentation.langchain" and is_default_export_span(span)
