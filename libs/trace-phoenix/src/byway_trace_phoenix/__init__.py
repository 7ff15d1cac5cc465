"""Arize Phoenix tracing for Byway workers.

Install ``byway-trace-phoenix`` and set ``PHOENIX_COLLECTOR_ENDPOINT`` (the Phoenix
server's URL, e.g. ``http://localhost:6006``); every worker then sends one trace per user
request to Phoenix: each task, call and resume, and the LLM and tool spans of the
LangGraph graphs and Google ADK agents it serves (through the OpenInference
instrumentations), grouped by Byway session and user. Without the variable the plugin
declines quietly.

Phoenix's own variables apply: ``PHOENIX_PROJECT_NAME`` (or ``PHOENIX_PROJECT``),
``PHOENIX_API_KEY``, ``PHOENIX_CLIENT_HEADERS``. Byway's: ``BYWAY_TRACE_SAMPLE_RATIO``,
``BYWAY_TRACE_HIDE_INPUTS``, ``BYWAY_TRACE_HIDE_OUTPUTS`` (see ``byway.telemetry``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import ClassVar

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from byway.plugins import PluginDeclined, PluginManifest
from byway.telemetry import RedactingExporter, TraceOptions, TracePlugin

__all__ = ["PhoenixPlugin"]

__version__ = "0.1.0"

ENDPOINT_ENV = "PHOENIX_COLLECTOR_ENDPOINT"


class PhoenixPlugin(TracePlugin):
    """Sends the worker's spans to Phoenix; see the module docstring."""

    # before other trace plugins: the provider it builds names the Phoenix project
    manifest: ClassVar[PluginManifest] = PluginManifest(
        "trace-phoenix",
        version=__version__,
        priority=40,
        description="traces to Arize Phoenix (OpenInference)",
    )

    def __init__(self, options: TraceOptions | None = None) -> None:
        if not os.environ.get(ENDPOINT_ENV):
            raise PluginDeclined(f"{ENDPOINT_ENV} is not set")
        super().__init__(options)

    def resource_attributes(self) -> dict[str, str]:
        from phoenix.otel import PROJECT_NAME
        from phoenix.otel.settings import get_env_project_name

        return {**super().resource_attributes(), PROJECT_NAME: get_env_project_name()}

    def processors(self, provider: TracerProvider) -> Iterable[SpanProcessor]:
        from phoenix.otel import HTTPSpanExporter

        exporter = HTTPSpanExporter(timeout=self.export_seconds)
        # Langfuse's own spans, when both plugins share the provider, are Langfuse's view
        # of what the OpenInference spans already show
        yield BatchSpanProcessor(
            RedactingExporter(exporter, self.options, skip_scopes=["langfuse-sdk"]),
            export_timeout_millis=int(self.export_seconds * 1000),
        )

    def instrument(self, provider: TracerProvider, frameworks: set[str]) -> None:
        if "langchain_core" in frameworks:
            from openinference.instrumentation.langchain import LangChainInstrumentor

            langchain = LangChainInstrumentor()
            if not langchain.is_instrumented_by_opentelemetry:
                langchain.instrument(tracer_provider=provider)
        if "google.adk" in frameworks:
            from openinference.instrumentation.google_adk import GoogleADKInstrumentor

            adk = GoogleADKInstrumentor()
            if not adk.is_instrumented_by_opentelemetry:
                adk.instrument(tracer_provider=provider)
