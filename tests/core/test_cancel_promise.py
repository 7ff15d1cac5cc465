"""What cancel promises: a task whose cancel was requested ends CANCELLED, whatever its
handler returns, and an interrupted run's answer never stands as the session's turn."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import redis.asyncio as aioredis

from byway import AgentContext, Command, EventType, GatewayClient, RedisSettings, agent
from tests.agents.basic import slow
from tests.conftest import running, until_status

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]

ANSWER = "my answer anyway"


@agent("stubborn")
async def stubborn(command: Command, context: AgentContext) -> str:
    """Told to "wait", it waits for a cancel, which it then ignores: it returns its answer
    (well within the cancel grace) instead of raising."""
    if getattr(command, "content", "") == "wait":
        for _ in range(2000):
            if context.is_cancel_requested():
                break
            await asyncio.sleep(0.01)
    return ANSWER


async def session_finals(client: GatewayClient, session: str) -> list[dict]:  # type: ignore[type-arg]
    events = [e async for e in client.stream(session, idle_timeout=0.5, block_ms=100)]
    return [e.data for e in events if e.event_type == EventType.FINAL_ANSWER]


async def history_turns(redis: aioredis.Redis, settings: RedisSettings, session: str) -> list:  # type: ignore[type-arg]
    groups = await redis.lrange(settings.keys.session_history(session), 0, -1)
    return [turn for group in groups for turn in json.loads(group)]


async def test_a_handler_that_ignores_a_graceful_cancel_ends_cancelled_without_its_answer(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    async with running(stubborn, settings, plugins=[]) as runner:
        sent = await client.send_message("stubborn", "ignore-s", "wait")
        await until_status(client, "ignore-s", sent.message_id, "RUNNING")
        await client.cancel_task(sent.message_id, "ignore-s", reason="enough")
        final = await client.wait_for_final("ignore-s", sent.message_id, timeout=10)
    counts = (runner.completed, runner.failed, runner.cancelled)  # once it stopped
    assert final.data["status"] == "CANCELLED"
    assert final.data["content"] == "" and final.data["error"]["type"] == "Cancelled"
    assert counts == (0, 0, 1)
    turns = await history_turns(redis, settings, "ignore-s")
    assert [(t["role"], t.get("status", "")) for t in turns] == [
        ("user", ""),
        ("assistant", "CANCELLED"),
    ]
    assert ANSWER not in json.dumps(turns)


async def test_a_cancel_recorded_before_the_end_is_written_wins_over_the_answer(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    """The cancel is in the record (a cancel tree, an interrupting message) but the worker
    has not read its cancel command yet when the handler returns: FINISH decides."""
    release = asyncio.Event()

    @agent("answerer")
    async def answerer(command: Command, context: AgentContext) -> str:
        await release.wait()
        return ANSWER

    async with running(answerer, settings, plugins=[]) as runner:
        sent = await client.send_message("answerer", "race-s", "go")
        record = await until_status(client, "race-s", sent.message_id, "RUNNING")
        key, field = settings.keys.session_registry("race-s"), f"exec:{record.execution_id}"
        stored = json.loads(await redis.hget(key, field))
        stored.update(cancel_requested=True, cancel_reason="interrupted by msg-next")
        await redis.hset(key, field, json.dumps(stored))  # no cancel command reaches the worker
        release.set()
        final = await client.wait_for_final("race-s", sent.message_id, timeout=10)
    counts = (runner.completed, runner.cancelled)
    assert final.data["status"] == "CANCELLED" and final.data["content"] == ""
    assert final.data["error"] == {"type": "Cancelled", "message": "interrupted by msg-next"}
    assert counts == (0, 1)
    ended = await client.registry.get_execution_by_message("race-s", sent.message_id)
    assert ended and ended.status == "CANCELLED"
    assert ended.result == {
        "status": "CANCELLED",
        "error": {"type": "Cancelled", "message": "interrupted by msg-next"},
    }
    assert isinstance(ended.timeline, list)
    assert ended.timeline[-1].detail == {"discarded": "COMPLETED"}
    turns = await history_turns(redis, settings, "race-s")
    assert [t.get("status", "") for t in turns] == ["", "CANCELLED"]
    assert ANSWER not in json.dumps(turns)


async def test_an_interrupted_run_never_stands_as_the_sessions_last_answer(
    client: GatewayClient, settings: RedisSettings
) -> None:
    async with running(stubborn, settings, plugins=[]):
        first = await client.send_message("stubborn", "interrupt-s", "wait")
        await until_status(client, "interrupt-s", first.message_id, "RUNNING")
        second = await client.send_message(
            "stubborn", "interrupt-s", "quick", multitask_strategy="interrupt"
        )
        assert second.disposition == "interrupt"
        await client.wait_for_final("interrupt-s", second.message_id, timeout=10)
    finals = await session_finals(client, "interrupt-s")
    assert [(f["status"], f["content"]) for f in finals] == [
        ("CANCELLED", ""),
        ("COMPLETED", ANSWER),
    ]
    assert finals[0]["error"]["message"] == f"interrupted by {second.message_id}"


async def test_the_stop_summary_counts_cancelled_tasks_apart_from_failed_ones(
    client: GatewayClient, settings: RedisSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="byway")
    async with running(slow, settings, plugins=[]) as runner:
        sent = await client.send_message("slow", "count-s", "30")
        await until_status(client, "count-s", sent.message_id, "RUNNING")
        await client.cancel_task(sent.message_id, "count-s", cancel_mode="force")
        await client.wait_for_final("count-s", sent.message_id, timeout=10)
    assert (runner.completed, runner.failed, runner.cancelled) == (0, 0, 1)
    [summary] = [r.getMessage() for r in caplog.records if " stopped: " in r.getMessage()]
    assert summary.endswith("0 completed, 0 failed, 1 cancelled")
