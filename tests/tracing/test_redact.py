"""The key-pattern rules of hidden inputs and outputs (byway._span_redact, used through
byway.telemetry), on the keys real instrumentations write."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from byway._span_redact import Side, hidden, side_of
from byway.telemetry import RedactingExporter, TraceOptions, hidden_keys

IN, OUT, BOTH, ERROR, NONE = Side.IN, Side.OUT, Side.BOTH, Side.ERROR, Side.NONE
ARGS = "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments"


@pytest.mark.parametrize(
    ("attributes", "name"),
    [
        # what issue #15 found in Phoenix with inputs hidden: LangGraph's graph span
        ({"openinference.span.kind": "CHAIN", "output.value": "state"}, "LangGraph"),
        # a graph node (LangGraph's "agent" node is an AGENT span: its output, the state)
        ({"openinference.span.kind": "AGENT", "output.value": "state"}, "agent"),
        ({"openinference.span.kind": "CHAIN", "output.value": "state"}, "call_model"),
        # a model's raw response (its tool calls' arguments are the user's words)
        ({"openinference.span.kind": "LLM", "output.value": "{generations}"}, "Model"),
        # the Prompt span's rendered prompt
        ({"openinference.span.kind": "PROMPT", "output.value": "rendered"}, "Prompt"),
        # a nested OpenInference key
        ({"openinference.span.kind": "LLM", ARGS: '{"query": "..."}'}, "Model"),
    ],
)
def test_the_leaks_the_issue_found_are_hidden_with_inputs(
    attributes: dict[str, Any], name: str
) -> None:
    content = [k for k in attributes if k != "openinference.span.kind"]
    assert hidden_keys(attributes, TraceOptions(hide_inputs=True), span_name=name) == content


@pytest.mark.parametrize(
    ("key", "kind", "side"),
    [
        # tool arguments, wherever they sit
        (ARGS, "LLM", IN),
        ("llm.input_messages.2.message.tool_calls.0.tool_call.function.arguments", "LLM", IN),
        ("gen_ai.completion.0.tool_calls.1.arguments", "", IN),
        ("gen_ai.tool.call.arguments", "TOOL", IN),
        ("gcp.vertex.agent.tool_call_args", "", IN),
        ("tool_call.function.arguments", "", IN),
        ("llm.function_call", "LLM", IN),
        ("tool.parameters", "TOOL", IN),
        # prompt templates
        ("llm.prompt_template.template", "PROMPT", IN),
        ("llm.prompt_template.version", "LLM", IN),
        ("llm.invocation_parameters", "LLM", IN),
        ("gen_ai.system_instructions", "", IN),
        ("embedding.embeddings.0.embedding.text", "EMBEDDING", IN),
        ("reranker.query", "RERANKER", IN),
        # what a model or tool made
        ("llm.output_messages.0.message.content", "LLM", OUT),
        ("llm.output_messages.0.message.contents.0.message_content.text", "LLM", OUT),
        ("gen_ai.completion.0.content", "", OUT),
        ("gen_ai.tool.call.result", "TOOL", OUT),
        ("gcp.vertex.agent.tool_response", "", OUT),
        ("retrieval.documents.3.document.content", "RETRIEVER", OUT),
        ("llm.choices.0", "LLM", OUT),
        # documents that carry both
        ("gen_ai.input.messages", "", BOTH),
        ("gen_ai.output.messages", "", BOTH),
        ("gcp.vertex.agent.llm_request", "", BOTH),
        ("gcp.vertex.agent.llm_response", "", BOTH),
        ("gcp.vertex.agent.data", "", BOTH),
        # a template's variables and rendered prompts: the conversation they render
        ("llm.prompt_template.variables", "LLM", BOTH),
        ("llm.prompts.0", "LLM", BOTH),
        # input.* / output.* by the span's kind
        ("input.value", "TOOL", IN),
        ("output.value", "TOOL", OUT),
        ("input.value", "RETRIEVER", IN),
        ("output.value", "RETRIEVER", OUT),
        ("input.value", "PROMPT", BOTH),
        ("output.value", "PROMPT", BOTH),
        ("input.value", "LLM", BOTH),
        ("output.value", "LLM", BOTH),
        ("input.value", "CHAIN", BOTH),
        ("output.value", "CHAIN", BOTH),
        ("output.value", "AGENT", BOTH),  # a framework's agent (or node) span
        ("output.value", "", BOTH),
        ("langfuse.observation.input", "GENERATION", BOTH),
        ("langfuse.observation.output", "TOOL", OUT),
        ("langfuse.observation.output", "SPAN", BOTH),
        ("langfuse.trace.input", "", IN),
        ("langfuse.trace.output", "", OUT),
        # a framework's message text this table does not name
        ("some.framework.turns.0.content", "", BOTH),
        ("some.framework.messages", "", BOTH),
        # errors
        ("exception.message", "", ERROR),
        ("exception.stacktrace", "", ERROR),
        ("langfuse.observation.status_message", "", ERROR),
        # no content: the structure of content, counts, names, ids
        ("input.mime_type", "CHAIN", NONE),
        ("llm.output_messages.0.message.role", "LLM", NONE),
        ("llm.output_messages.0.message.tool_calls.0.tool_call.id", "LLM", NONE),
        ("llm.output_messages.0.message.tool_calls.0.tool_call.function.name", "LLM", NONE),
        ("llm.input_messages.3.message.tool_call_id", "LLM", NONE),
        ("llm.token_count.prompt", "LLM", NONE),
        ("llm.token_count.completion", "LLM", NONE),
        ("gen_ai.usage.input_tokens", "", NONE),
        ("llm.model_name", "LLM", NONE),
        ("gen_ai.request.model", "", NONE),
        ("session.id", "", NONE),
        ("user.id", "", NONE),
        ("gen_ai.conversation.id", "", NONE),
        ("openinference.span.kind", "", NONE),
        ("tool.name", "TOOL", NONE),
        ("llm.tools.0.tool.json_schema", "LLM", NONE),
        ("metadata.langgraph_node", "AGENT", NONE),
        ("byway.status", "AGENT", NONE),
        ("exception.type", "", NONE),
        ("inputs_seen", "", NONE),  # only a similar name
        ("llm.invocation_parameters_count", "", NONE),
    ],
)
def test_each_key_has_its_side(key: str, kind: str, side: Side) -> None:
    assert side_of(key, kind=kind) == side


def test_a_model_s_input_messages_take_their_side_from_their_role() -> None:
    attributes = {
        "openinference.span.kind": "LLM",
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "Plan a trip for: Porto",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": "Porto",
        "llm.input_messages.2.message.role": "assistant",
        "llm.input_messages.2.message.content": "earlier answer",
        "llm.input_messages.3.message.role": "tool",
        "llm.input_messages.3.message.content": "a tool's result",
        "llm.input_messages.4.message.content": "a message without a role",
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "Porto",
        "llm.token_count.prompt": 12,
    }
    by_input = hidden(attributes, inputs=True, outputs=False)
    by_output = hidden(attributes, inputs=False, outputs=True)
    content = [k for k in attributes if k.endswith(".content")]
    assert by_input == [
        k for k in content if not k.startswith(("llm.input_messages.2", "llm.input_messages.3"))
    ]
    assert by_output == [
        k
        for k in content
        if k.startswith(("llm.input_messages.2", "llm.input_messages.3", "llm.input_messages.4"))
    ]


@pytest.mark.parametrize(
    ("name", "by_input", "by_output"),
    [
        # a task's request is an input, its answer an output
        ("byway.task planner", ["input.value"], ["output.value"]),
        # a resume carries the user's reply or a callee's answer: hidden with either
        ("byway.resume planner", ["input.value"], ["input.value", "output.value"]),
    ],
)
def test_byway_s_own_spans(name: str, by_input: list[str], by_output: list[str]) -> None:
    attributes = {
        "openinference.span.kind": "AGENT",
        "input.value": "in",
        "output.value": "out",
        "byway.status": "COMPLETED",
        "session.id": "s",
    }
    assert hidden(attributes, inputs=True, outputs=False, span_name=name, scope="byway") == (
        by_input
    )
    assert hidden(attributes, inputs=False, outputs=True, span_name=name, scope="byway") == (
        by_output
    )
    # the same names from another scope are a framework's agent: its values carry both
    both = ["input.value", "output.value"]
    assert hidden(attributes, inputs=True, outputs=False, span_name=name, scope="x") == both


def test_events_lose_their_content_and_keep_their_structure() -> None:
    """Exception messages go with either; a GenAI content event keeps its structure only;
    an event's generic values carry both sides (its span's state)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    options = TraceOptions(hide_outputs=True)
    provider.add_span_processor(SimpleSpanProcessor(RedactingExporter(memory, options)))
    with provider.get_tracer("test").start_as_current_span("node") as span:
        span.set_attributes({"openinference.span.kind": "CHAIN", "output.value": "SECRET"})
        span.add_event(
            "gen_ai.choice",
            {"gen_ai.system": "x", "index": 0, "finish_reason": "stop", "message": "SECRET"},
        )
        span.add_event("checkpoint", {"output.value": "SECRET", "step": 3})
        span.record_exception(ValueError("SECRET"))
    [exported] = memory.get_finished_spans()
    assert dict(exported.attributes or {}) == {"openinference.span.kind": "CHAIN"}
    choice, checkpoint, exception = exported.events
    assert dict(choice.attributes or {}) == {"gen_ai.system": "x", "index": 0,
                                             "finish_reason": "stop"}  # fmt: skip
    assert dict(checkpoint.attributes or {}) == {"step": 3}
    assert dict(exception.attributes or {}).keys() == {"exception.type", "exception.escaped"}


def test_nothing_is_hidden_unless_asked() -> None:
    attributes = {ARGS: "x", "output.value": "y", "exception.message": "z"}
    assert hidden(attributes, inputs=False, outputs=False) == []
    assert hidden_keys(attributes, TraceOptions()) == []
