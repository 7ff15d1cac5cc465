"""The parts both trace plugins share (byway.telemetry), and how each plugin is switched
on: by its provider's usual variables, declining quietly without them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import byway_trace_langfuse
import byway_trace_phoenix
import pytest
from byway_trace_langfuse import LangfusePlugin
from byway_trace_phoenix import PhoenixPlugin
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from byway.errors import ConfigurationError
from byway.plugins import PluginDeclined
from byway.telemetry import RedactingExporter, TraceOptions, hidden_keys
from byway.testing import PluginSuite


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


def test_hidden_keys_cover_every_convention_and_nothing_else() -> None:
    attributes = {
        "input.value": "x",
        "input.mime_type": "text/plain",
        "llm.input_messages.0.message.content": "x",
        "gen_ai.prompt.0.content": "x",
        "gcp.vertex.agent.llm_request": "x",
        "langfuse.observation.input": "x",
        "output.value": "y",
        "llm.output_messages.0.message.content": "y",
        "gcp.vertex.agent.llm_response": "y",
        "session.id": "s",
        "llm.token_count.prompt": 3,
        "inputs_seen": 1,  # not an input attribute, only a similar name
    }
    inputs = set(hidden_keys(attributes, TraceOptions(hide_inputs=True)))
    outputs = set(hidden_keys(attributes, TraceOptions(hide_outputs=True)))
    assert inputs == {k for k, v in attributes.items() if v == "x"} | {"input.mime_type"}
    assert outputs == {k for k, v in attributes.items() if v == "y"}
    assert hidden_keys(attributes, TraceOptions()) == []


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
    for module in (byway_trace_phoenix, byway_trace_langfuse):
        monkeypatch.setattr(module, "imported", lambda name: False)
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


class TestPhoenixPlugin(PluginSuite):
    @pytest.fixture
    def plugin(self, clean_env: pytest.MonkeyPatch) -> Iterator[PhoenixPlugin]:
        for name, value in PHOENIX.items():
            clean_env.setenv(name, value)
        yield PhoenixPlugin()


class TestLangfusePlugin(PluginSuite):
    @pytest.fixture
    def plugin(self, clean_env: pytest.MonkeyPatch) -> Iterator[LangfusePlugin]:
        for name, value in LANGFUSE.items():
            clean_env.setenv(name, value)
        yield LangfusePlugin()


def test_the_suites_left_langchain_alone() -> None:
    from openinference.instrumentation.langchain import LangChainInstrumentor

    assert not LangChainInstrumentor().is_instrumented_by_opentelemetry
    assert byway_trace_langfuse._handler is None
