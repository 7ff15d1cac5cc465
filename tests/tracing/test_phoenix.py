"""byway-trace-phoenix against a real Phoenix server (SQLite storage) on loopback."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from byway import GatewayClient, RedisSettings
from tests.tracing.phoenix_server import phoenix_spans
from tests.tracing.tree import run_tree

pytestmark = [pytest.mark.redis, pytest.mark.timeout(600)]


def _ancestors(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    chain = []
    parent = span.get("parent_id")
    while parent and parent in by_id:
        span = by_id[parent]
        chain.append(span)
        parent = span.get("parent_id")
    return chain


async def test_one_trace_holds_the_langgraph_task_and_the_adk_spans_under_it(
    phoenix: str, client: GatewayClient, settings: RedisSettings
) -> None:
    project = f"byway-{uuid.uuid4().hex[:8]}"
    env = {"PHOENIX_COLLECTOR_ENDPOINT": phoenix, "PHOENIX_PROJECT_NAME": project}
    session, user = f"trip-{uuid.uuid4().hex[:6]}", "traveller-7"
    await run_tree(client, settings, env, session, user)

    spans = await phoenix_spans(phoenix, project, want=12)
    names = sorted(s["name"] for s in spans)
    assert {s["context"]["trace_id"] for s in spans} and len(
        {s["context"]["trace_id"] for s in spans}
    ) == 1, f"more than one trace: {names}"
    by_id = {s["context"]["span_id"]: s for s in spans}
    if os.environ.get("DUMP"):
        for s in sorted(spans, key=lambda s: s["start_time"]):
            depth = len(_ancestors(s, by_id))
            a = s["attributes"]
            print(
                "  " * depth,
                s["name"],
                s["span_kind"],
                a.get("llm.model_name"),
                a.get("llm.token_count.prompt"),
                a.get("session.id") == session,
            )
    [root] = [s for s in spans if not s.get("parent_id")]
    assert root["name"] == "byway.task supervisor", names
    assert root["attributes"]["session.id"] == session
    assert root["attributes"]["user.id"] == user
    assert root["attributes"]["input.value"] == "Lisbon"
    assert root["attributes"]["byway.status"] == "WAITING_AGENT"
    # the supervisor's run resumed with the specialist's reply, under the same trace
    [resumed] = [s for s in spans if s["name"] == "byway.resume supervisor"]
    assert resumed["attributes"]["output.value"].startswith("supervisor: ask_customer answered")
    assert resumed["attributes"]["byway.status"] == "COMPLETED"

    specialist = [s for s in spans if s["name"] == "byway.task adk-specialist"]
    assert specialist, names
    # the specialist's LLM spans (OpenInference ADK) sit under the LangGraph task
    adk_llm = [
        s
        for s in spans
        if s["span_kind"] == "LLM" and s["attributes"].get("llm.model_name") == "scripted"
    ]
    assert adk_llm, f"no ADK LLM span: {names}"
    for span in adk_llm:
        up = [a["name"] for a in _ancestors(span, by_id)]
        assert up[-1] == "byway.task supervisor", up
        assert any(
            n.startswith("byway.task adk-specialist") or n.startswith("byway.resume adk-specialist")
            for n in up
        ), up
        assert span["attributes"]["session.id"] == session
        assert span["attributes"]["user.id"] == user
    # LangGraph's own LLM span, with its token counts, under the supervisor's task
    lg_llm = [
        s
        for s in spans
        if s["span_kind"] == "LLM" and s["attributes"].get("llm.model_name") == "scripted-react"
    ]
    assert lg_llm, f"no LangGraph LLM span: {names}"
    for span in lg_llm:
        assert span["attributes"]["llm.token_count.prompt"] > 0
        assert span["attributes"]["session.id"] == session
        assert span["attributes"]["user.id"] == user
    # every span of the request is in its session
    assert {s["attributes"].get("session.id") for s in spans} == {session}
