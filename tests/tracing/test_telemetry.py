"""The parts both trace plugins share (byway.telemetry), and how each plugin is switched
on: by its provider's usual variables, declining quietly without them."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import byway_trace_langfuse
import pytest
from byway_trace_langfuse import LangfusePlugin
from byway_trace_phoenix import PhoenixPlugin
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from byway import telemetry
from byway.errors import ConfigurationError
from byway.plugins import PluginBuildContext, PluginDeclined
from byway.telemetry import RedactingExporter, TraceOptions
from byway.testing import PluginSuite
from tests.tracing.receiver import serving


def test_options_come_from_the_environment() -> None:
    assert TraceOptions.from_env({}) == TraceOptions(1.0, False, False)
    env = {
        "BYWAY_TRACE_SAMPLE_RATIO": "0.25",
        "BYWAY_TRACE_HIDE_INPUTS": "yes",
        "BYWAY_TRACE_HIDE_OUTPUTS": "0",
    }
    assert TraceOptions.from_env(env) == TraceOptions(0.25, True, False)
    # a provider's own sampling variable, unless Byway's is set
    fallback = {"LANGFUSE_SAMPLE_RATE": "0.5"}
    assert (
        TraceOptions.from_env(fallback, sample_fallback="LANGFUSE_SAMPLE_RATE").sample_ratio == 0.5
    )
    both = {**fallback, "BYWAY_TRACE_SAMPLE_RATIO": "0.1"}
    assert TraceOptions.from_env(both, sample_fallback="LANGFUSE_SAMPLE_RATE").sample_ratio == 0.1


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BYWAY_TRACE_SAMPLE_RATIO": "2"}, "BYWAY_TRACE_SAMPLE_RATIO"),
        ({"BYWAY_TRACE_SAMPLE_RATIO": "half"}, "BYWAY_TRACE_SAMPLE_RATIO"),
        ({"BYWAY_TRACE_HIDE_INPUTS": "maybe"}, "BYWAY_TRACE_HIDE_INPUTS"),
    ],
)
def test_a_bad_option_names_its_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        TraceOptions.from_env(env)


def test_the_redacting_exporter_drops_hidden_attributes_messages_and_descriptions() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    options = TraceOptions(hide_inputs=True, hide_outputs=True)
    provider.add_span_processor(SimpleSpanProcessor(RedactingExporter(memory, options)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("step") as span:
        span.set_attributes({"input.value": "secret in", "output.value": "secret out", "k": 1})
        span.record_exception(ValueError("secret in the error"))
        span.set_status(Status(StatusCode.ERROR, "secret in the status"))
    [exported] = memory.get_finished_spans()
    assert dict(exported.attributes or {}) == {"k": 1}
    [event] = exported.events
    assert event.name == "exception"
    assert "secret" not in repr(dict(event.attributes or {}))
    assert dict(event.attributes or {})["exception.type"] == "ValueError"
    assert exported.status.status_code == StatusCode.ERROR
    assert not exported.status.description


def test_without_hiding_the_exporter_passes_spans_through() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingExporter(memory, TraceOptions())))
    with provider.get_tracer("test").start_as_current_span("step") as span:
        span.set_attribute("input.value", "kept")
    [exported] = memory.get_finished_spans()
    assert exported.attributes == {"input.value": "kept"}


# -- switched on by the provider's variables --------------------------------------------------

PHOENIX = {"PHOENIX_COLLECTOR_ENDPOINT": "http://127.0.0.1:9"}
LANGFUSE = {
    "LANGFUSE_PUBLIC_KEY": "pk-lf-suite",
    "LANGFUSE_SECRET_KEY": "sk-lf-suite",
    "LANGFUSE_BASE_URL": "http://127.0.0.1:9",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [*PHOENIX, *LANGFUSE, "LANGFUSE_HOST", "LANGFUSE_TRACING_ENABLED"]:
        monkeypatch.delenv(name, raising=False)
    # the suites below must not instrument LangChain or ADK in the test process
    monkeypatch.setattr(telemetry, "imported", lambda name: False)
    return monkeypatch


@pytest.mark.parametrize("plugin_class", [PhoenixPlugin, LangfusePlugin])
def test_without_its_variables_a_plugin_declines(
    clean_env: pytest.MonkeyPatch, plugin_class: type[Any]
) -> None:
    with pytest.raises(PluginDeclined):
        plugin_class()


def test_langfuse_declines_when_its_tracing_is_switched_off(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in LANGFUSE.items():
        clean_env.setenv(name, value)
    clean_env.setenv("LANGFUSE_TRACING_ENABLED", "false")
    with pytest.raises(PluginDeclined, match="LANGFUSE_TRACING_ENABLED"):
        LangfusePlugin()


def _context() -> PluginBuildContext:
    return PluginBuildContext(worker_id="w", agent_types=[], redis=None, keys=None)  # type: ignore[arg-type]


async def test_langfuse_hides_error_messages_and_statuses_too(
    clean_env: pytest.MonkeyPatch,
) -> None:
    """Langfuse's own masking hook sees attributes only: the exporter at the end of its
    pipeline is the plugin's, which also drops events' messages and status texts."""
    with serving() as (url, got):
        env = {**LANGFUSE, "LANGFUSE_PUBLIC_KEY": "pk-lf-hide", "LANGFUSE_BASE_URL": url}
        for name, value in env.items():
            clean_env.setenv(name, value)
        clean_env.setenv("BYWAY_TRACE_HIDE_INPUTS", "true")
        plugin = LangfusePlugin()
        ctx = _context()
        await plugin.setup(ctx)
        provider = ctx.tracer_provider
        with provider.get_tracer("byway").start_as_current_span("byway.task t") as span:
            span.set_attributes({"input.value": "SECRET-IN", "session.id": "s1"})
            span.record_exception(ValueError("SECRET-ERROR"))
            span.set_status(Status(StatusCode.ERROR, "ValueError: SECRET-STATUS"))
        await plugin.on_worker_shutdown(None)
    [exported] = got.spans
    assert exported["attributes"]["session.id"] == "s1"
    assert "SECRET" not in repr(exported)


async def test_a_back_end_that_never_answers_cannot_hold_a_worker_s_exit(
    clean_env: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        clean_env.setenv(
            "PHOENIX_COLLECTOR_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}"
        )
        plugin = PhoenixPlugin()
        ctx = _context()
        await plugin.setup(ctx)
        with ctx.tracer_provider.get_tracer("byway").start_as_current_span("byway.task t"):
            pass
        started = time.monotonic()
        await plugin.on_worker_shutdown(None)
        elapsed = time.monotonic() - started
    assert elapsed < plugin.export_seconds + 1, elapsed  # within the plugin hook timeout


class TestPhoenixPlugin(PluginSuite):
    @pytest.fixture
    def plugin(self, clean_env: pytest.MonkeyPatch) -> Iterator[PhoenixPlugin]:
        for name, value in PHOENIX.items():
            clean_env.setenv(name, value)
        yield PhoenixPlugin()
        _left_langchain_alone()


class TestLangfusePlugin(PluginSuite):
    @pytest.fixture
    def plugin(self, clean_env: pytest.MonkeyPatch) -> Iterator[LangfusePlugin]:
        for name, value in LANGFUSE.items():
            clean_env.setenv(name, value)
        yield LangfusePlugin()
        _left_langchain_alone()


def _left_langchain_alone() -> None:
    """The suites set plugins up without instrumenting the test process."""
    from openinference.instrumentation.langchain import LangChainInstrumentor

    assert not LangChainInstrumentor().is_instrumented_by_opentelemetry
    assert byway_trace_langfuse._handler is None
