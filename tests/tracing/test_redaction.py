"""Hidden inputs and outputs, end to end: a LangGraph planner (prompt template, a local
tool, a Byway agent tool) calls an ADK agent in another worker process, traced to a real
Phoenix server; a marker in the user's words (so in the rendered prompt, the template's
variable, both tools' arguments and the graph's state) or in every answer must be in no
stored attribute, event or status of any span, while the trace stays useful."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest

from byway import GatewayClient, RedisSettings
from tests.tracing.marked import ANSWER
from tests.tracing.phoenix_server import phoenix_spans
from tests.tracing.tree import leaks, run_marked

pytestmark = [pytest.mark.redis, pytest.mark.timeout(600)]


async def _traced(
    phoenix: str, client: GatewayClient, settings: RedisSettings, hide: str
) -> tuple[list[dict[str, Any]], str, str]:
    """Phoenix's spans of one marked request with ``hide`` set; the marker; the session."""
    project = f"redact-{uuid.uuid4().hex[:8]}"
    env = {"PHOENIX_COLLECTOR_ENDPOINT": phoenix, "PHOENIX_PROJECT_NAME": project, hide: "true"}
    marker, session = await run_marked(client, settings, env)
    spans = await phoenix_spans(phoenix, project, want=20)
    if os.environ.get("DUMP"):
        print(json.dumps(spans, indent=1))
    return spans, marker, session


def _the_trace_is_still_whole(spans: list[dict[str, Any]], session: str) -> None:
    kinds = {s["span_kind"] for s in spans}
    assert {"LLM", "TOOL", "CHAIN", "AGENT", "PROMPT"} <= kinds, kinds
    names = {s["name"] for s in spans}
    assert {"byway.task planner", "byway.task booker", "find_flights", "booker"} <= names
    assert {s["attributes"].get("session.id") for s in spans} == {session}
    assert {s["attributes"].get("user.id") for s in spans} == {"traveller-1"}
    llm = [s for s in spans if s["span_kind"] == "LLM"]
    models = {s["attributes"].get("llm.model_name") for s in llm}
    assert models == {"scripted-planner", "scripted-booker"}, models
    for span in llm:
        assert span["attributes"]["llm.token_count.prompt"] > 0, span["name"]
        assert span["attributes"]["llm.token_count.completion"] > 0, span["name"]
        roles = [k for k in span["attributes"] if k.endswith(".message.role")]
        assert roles, span["name"]
    [resumed] = [s for s in spans if s["name"] == "byway.resume planner"]
    assert resumed["attributes"]["byway.status"] == "COMPLETED"


async def test_hidden_inputs_leave_no_trace_of_the_user_s_words(
    phoenix: str, client: GatewayClient, settings: RedisSettings
) -> None:
    spans, marker, session = await _traced(phoenix, client, settings, "BYWAY_TRACE_HIDE_INPUTS")
    found = leaks(spans, marker)
    assert not found, "the user's words reached Phoenix:\n" + "\n".join(found)
    _the_trace_is_still_whole(spans, session)
    # the answers are still there: the task's, the model's, the tools' results
    [resumed] = [s for s in spans if s["name"] == "byway.resume planner"]
    assert resumed["attributes"]["output.value"].startswith(f"{ANSWER} planned")
    tools = [s for s in spans if s["name"] == "find_flights"]
    assert any(ANSWER in s["attributes"].get("output.value", "") for s in tools)


async def test_hidden_outputs_leave_no_trace_of_any_answer(
    phoenix: str, client: GatewayClient, settings: RedisSettings
) -> None:
    spans, marker, session = await _traced(phoenix, client, settings, "BYWAY_TRACE_HIDE_OUTPUTS")
    found = leaks(spans, ANSWER)
    assert not found, "answers reached Phoenix:\n" + "\n".join(found)
    _the_trace_is_still_whole(spans, session)
    # the user's words are still there: on the root task and in the model's prompt
    [root] = [s for s in spans if s["name"] == "byway.task planner"]
    assert marker in root["attributes"]["input.value"]
    prompts = [s["attributes"].get("llm.input_messages.1.message.content", "") for s in spans]
    assert any(marker in p for p in prompts)
