"""byway-trace-langfuse: the Langfuse SDK in the workers exports to a local OTLP receiver
standing in for the Langfuse server (which cannot be installed here)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from byway import GatewayClient, RedisSettings
from tests.tracing.marked import ANSWER
from tests.tracing.receiver import Receiver, serving
from tests.tracing.tree import leaks, run_marked, run_tree

pytestmark = [pytest.mark.redis, pytest.mark.timeout(180)]

PUBLIC, SECRET = "pk-lf-test", "sk-lf-test"


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    with serving() as (url, got):
        yield url, got


def _env(url: str, **extra: str) -> dict[str, str]:
    return {
        "LANGFUSE_PUBLIC_KEY": PUBLIC,
        "LANGFUSE_SECRET_KEY": SECRET,
        "LANGFUSE_BASE_URL": url,
        "LANGFUSE_FLUSH_INTERVAL": "0.5",
        **extra,
    }


def _ancestors(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    chain = []
    while span["parent_id"] in by_id:
        span = by_id[span["parent_id"]]
        chain.append(span["name"])
    return chain


async def _settled(got: Receiver) -> list[dict[str, Any]]:
    """The spans, once no more arrive for a second (the workers flushed on shutdown)."""
    seen = -1
    while seen != len(got.spans):
        seen = len(got.spans)
        await asyncio.sleep(1)
    return list(got.spans)


async def test_one_trace_with_nesting_session_user_and_generations(
    receiver: tuple[str, Receiver], client: GatewayClient, settings: RedisSettings
) -> None:
    url, got = receiver
    session, user = f"trip-{uuid.uuid4().hex[:6]}", "traveller-9"
    await run_tree(client, settings, _env(url), session, user)
    spans = await _settled(got)

    expected = "Basic " + base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode()
    assert got.requests and all(auth == expected for _, auth in got.requests)
    names = sorted(s["name"] for s in spans)
    assert len({s["trace_id"] for s in spans}) == 1, f"more than one trace: {names}"
    by_id = {s["span_id"]: s for s in spans}
    [root] = [s for s in spans if s["parent_id"] not in by_id]
    assert root["name"] == "byway.task supervisor"
    assert root["attributes"]["langfuse.observation.type"] == "agent"
    assert root["attributes"]["input.value"] == "Lisbon"
    # the trace's output: the root's answer, from the run that resumed and ended it
    [answered] = [s for s in spans if "langfuse.trace.output" in s["attributes"]]
    assert answered["name"] == "byway.resume supervisor"
    assert answered["attributes"]["langfuse.trace.output"].startswith("supervisor: ask_customer")
    # Langfuse's trace attributes: session id = the Byway session, user id = the user code
    assert {s["attributes"].get("session.id") for s in spans} == {session}
    assert {s["attributes"].get("user.id") for s in spans} == {user}

    # LangGraph's LLM calls: Langfuse generations with model and token counts, nested under
    # the supervisor's task (first run) and its resume
    generations = [
        s for s in spans if s["attributes"].get("langfuse.observation.type") == "generation"
    ]
    lg = [
        g
        for g in generations
        if g["attributes"].get("langfuse.observation.model.name") == "scripted-react"
    ]
    assert len(lg) == 2, names
    for generation in lg:
        usage = json.loads(generation["attributes"]["langfuse.observation.usage_details"])
        assert usage["input"] > 0 and usage["output"] == 3
        up = _ancestors(generation, by_id)
        assert up[-1] == "byway.task supervisor", up
    # the ADK specialist (another process): its LLM spans under its task, under the root
    adk = [s for s in spans if s["attributes"].get("llm.model_name") == "scripted"]
    assert adk, names
    for span in adk:
        up = _ancestors(span, by_id)
        assert up[-1] == "byway.task supervisor", up
        assert any(n.endswith("adk-specialist") and n.startswith("byway.") for n in up), up
    assert any(s["attributes"].get("llm.token_count.prompt") == 10 for s in adk)


async def test_hidden_inputs_and_outputs_never_leave_the_workers(
    receiver: tuple[str, Receiver], client: GatewayClient, settings: RedisSettings
) -> None:
    url, got = receiver
    env = _env(url, BYWAY_TRACE_HIDE_INPUTS="true", BYWAY_TRACE_HIDE_OUTPUTS="true")
    session = f"trip-{uuid.uuid4().hex[:6]}"
    await run_tree(client, settings, env, session, "traveller-3")
    spans = await _settled(got)
    assert {s["name"] for s in spans} >= {"byway.task supervisor", "byway.task adk-specialist"}
    # what the user, the agents and the models said is in no attribute of any span
    for span in spans:
        seen = {**span["attributes"], "(status)": span["status"], "(events)": span["events"]}
        for key, value in seen.items():
            text = json.dumps(value)
            for secret in ("Lisbon", "May 3-5", "ask_customer answered", "which dates"):
                assert secret not in text, f"{span['name']}: {key} = {text[:200]}"
    # ... while the trace is still whole: session, user, tokens
    assert {s["attributes"].get("session.id") for s in spans} == {session}
    assert any("langfuse.observation.usage_details" in s["attributes"] for s in spans)


@pytest.mark.parametrize("hide", ["BYWAY_TRACE_HIDE_INPUTS", "BYWAY_TRACE_HIDE_OUTPUTS"])
async def test_one_side_hidden_leaves_no_trace_of_it_and_keeps_the_other(
    receiver: tuple[str, Receiver], client: GatewayClient, settings: RedisSettings, hide: str
) -> None:
    """Langfuse's handler writes graph state and conversations as observation inputs and
    outputs: with one side hidden, its marker is nowhere, the other side's still shows."""
    url, got = receiver
    marker, session = await run_marked(client, settings, _env(url, **{hide: "true"}))
    spans = await _settled(got)
    hidden, shown = (marker, ANSWER) if hide.endswith("INPUTS") else (ANSWER, marker)
    found = leaks(spans, hidden)
    assert not found, "\n".join(found)
    assert leaks(spans, shown)
    assert {s["attributes"].get("session.id") for s in spans} == {session}
    usage = [s for s in spans if "langfuse.observation.usage_details" in s["attributes"]]
    assert usage and all(
        json.loads(s["attributes"]["langfuse.observation.usage_details"])["input"] > 0
        for s in usage
    )


async def test_a_sample_ratio_of_zero_sends_nothing_and_the_tasks_still_run(
    receiver: tuple[str, Receiver], client: GatewayClient, settings: RedisSettings
) -> None:
    url, got = receiver
    env = _env(url, BYWAY_TRACE_SAMPLE_RATIO="0")
    await run_tree(client, settings, env, f"trip-{uuid.uuid4().hex[:6]}", "traveller-4")
    await asyncio.sleep(1)
    assert got.spans == []


async def test_a_worker_follows_the_sampling_decision_of_the_request_it_serves(
    receiver: tuple[str, Receiver], client: GatewayClient, settings: RedisSettings
) -> None:
    """The specialist's worker samples nothing of its own, yet traces the specialist's
    runs of a request the supervisor's worker sampled: a request is traced whole."""
    url, got = receiver
    await run_tree(
        client,
        settings,
        _env(url, BYWAY_TRACE_SAMPLE_RATIO="1"),
        f"trip-{uuid.uuid4().hex[:6]}",
        "traveller-5",
        specialist_env={"BYWAY_TRACE_SAMPLE_RATIO": "0"},
    )
    spans = await _settled(got)
    names = {s["name"] for s in spans}
    assert {"byway.task adk-specialist", "byway.resume adk-specialist"} <= names, names
    assert len({s["trace_id"] for s in spans}) == 1
