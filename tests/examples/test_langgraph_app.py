"""The LangChain v1 travel agent of examples/langgraph_app: ``make demo`` end to end, and
its HumanInTheLoopMiddleware approval answered with an approval and with a rejection,
served by two worker processes."""

from __future__ import annotations

from typing import Any

import pytest

from byway import Event, GatewayClient, RedisSettings
from tests.conftest import spawn_worker, stop_process, until_status, wait_online
from tests.examples import run_demo

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


def test_the_langgraph_demo_streams_tools_and_tokens_and_answers_its_approval(
    settings: RedisSettings,
) -> None:
    out = run_demo(settings, "examples.langgraph_app.demo", "Plan a trip to Porto")
    assert (
        'tool_calls: [{"id": "call-weather", "name": "get_weather", "args": {"city": "Porto"}}]'
        in out
    )
    assert out.count('"name": "book_trip", "args"') == 1  # announced once, not again on resume
    assert "asks (" in out and "A booking needs your approval" in out
    assert out.count("A booking needs your approval") == 1  # the question, shown once
    assert 'Args: {"city": "Porto"}\n      Decisions: approve, reject' in out
    assert 'expects: {"decisions": [{"type": "approve"} | {"type": "reject"' in out
    assert (
        "The forecast for Porto: sunny and 24°C in Porto all week. "
        "Booked: 3 nights in Porto, confirmation TRV-9595." in out
    )
    assert "QUEUED → RUNNING → WAITING_USER → RESUMED → COMPLETED" in out


async def _answer(client: GatewayClient, session: str, message_id: str, answer: Any) -> None:
    """Resume with a structured answer, as a user of ``GatewayClient`` would."""
    await client.resume(session, message_id, answer)


async def _question(client: GatewayClient, session: str) -> Event:
    events = [e async for e in client.stream(session, idle_timeout=0.5)]
    [asked] = [e for e in events if e.data.get("kind") == "ask_user"]
    return asked


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        ({"type": "approve"}, "Booked: 3 nights in Lisbon, confirmation TRV-7514."),
        (
            {"type": "reject", "message": "too expensive"},
            "Not booked (User rejected the tool call for `book_trip` with reason: too expensive).",
        ),
    ],
    ids=["approve", "reject"],
)
async def test_a_booking_waits_for_approval_and_goes_on_as_decided(
    decision: dict[str, str], expected: str, client: GatewayClient, settings: RedisSettings
) -> None:
    procs = {
        w: spawn_worker(
            "examples.langgraph_app.app:graph", settings, "--agent-type", "travel", worker_id=w
        )
        for w in ("travel-a", "travel-b")
    }
    session = f"hitl-{decision['type']}"
    try:
        await wait_online(client, "travel", count=2, timeout=60)
        sent = await client.send_message("travel", session, "Plan a trip to Lisbon")
        asked = await until_status(client, session, sent.message_id, "WAITING_USER")
        assert stop_process(procs.pop(asked.worker_id)) == 0  # the other worker goes on
        question = await _question(client, session)
        await _answer(client, session, sent.message_id, {"decisions": [decision]})
        final = await client.wait_for_final(session, sent.message_id, timeout=30)
    finally:
        for proc in procs.values():
            stop_process(proc)
    assert question.data["prompt"] == (
        "A booking needs your approval\n\nTool: book_trip\n"
        'Args: {"city": "Lisbon"}\nDecisions: approve, reject'
    )
    [pending] = question.data["metadata"]["interrupts"]
    assert pending["value"]["action_requests"][0]["args"] == {"city": "Lisbon"}
    assert pending["value"]["review_configs"] == [
        {"action_name": "book_trip", "allowed_decisions": ["approve", "reject"]}
    ]
    assert pending["prompt"] == question.data["prompt"]
    assert pending["expects"] == (
        '{"decisions": [{"type": "approve"} | {"type": "reject", "message": "..."}]}'
    )
    assert final.data["status"] == "COMPLETED", final.data
    assert final.data["content"] == (
        f"The forecast for Lisbon: sunny and 24°C in Lisbon all week. {expected}"
    )
