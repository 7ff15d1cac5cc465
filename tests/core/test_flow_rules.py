"""Orchestration rules checked in one process: limits, interrupt, cancel_session."""

from __future__ import annotations

import asyncio

import pytest

from byway import (
    AgentContext,
    AskAgentCommand,
    Command,
    EventType,
    GatewayClient,
    RedisSettings,
    SessionBusyError,
    agent,
)
from tests.agents.flows import deep, kid, sequencer, serial
from tests.conftest import running

pytestmark = pytest.mark.redis


async def final_of(client: GatewayClient, session: str, message_id: str) -> dict:  # type: ignore[type-arg]
    async def read() -> dict:  # type: ignore[type-arg]
        async for event in client.stream(session, until_message_id=message_id):
            if event.event_type == EventType.FINAL_ANSWER and event.message_id == message_id:
                return event.data
        raise AssertionError("no final")

    return await asyncio.wait_for(read(), 20)


async def test_a_runaway_call_tree_stops_at_the_depth_limit(
    client: GatewayClient, settings: RedisSettings
) -> None:
    async with running(deep, settings, max_call_depth=3):
        sent = await client.send_message("deep", "deep-s", "go")
        final = await final_of(client, "deep-s", sent.message_id)
    assert final["status"] == "FAILED"
    assert "max_call_depth=3" in final["content"]
    records = await client.registry.list_executions("deep-s")
    assert len(records) == 4  # the root and three levels below it


async def test_fan_out_above_the_limit_fails_with_a_clear_error(
    client: GatewayClient, settings: RedisSettings
) -> None:
    @agent("wide")
    async def wide(command: Command, context: AgentContext) -> object:
        return await context.dispatch_group(
            [{"target_agent_type": "wide", "content": "x"} for _ in range(5)]
        )

    async with running(wide, settings, max_fanout=4):
        sent = await client.send_message("wide", "wide-s", "go")
        final = await final_of(client, "wide-s", sent.message_id)
    assert final["status"] == "FAILED"
    assert final["error"]["type"] == "LimitExceededError"
    assert "max_fanout=4" in final["error"]["message"]


async def test_calling_an_agent_nobody_serves_fails_at_the_call(
    client: GatewayClient, settings: RedisSettings
) -> None:
    @agent("lonely")
    async def lonely(command: Command, context: AgentContext) -> object:
        return await context.call_agent("nobody-home", "hello?")

    async with running(lonely, settings):
        sent = await client.send_message("lonely", "lonely-s", "go")
        final = await final_of(client, "lonely-s", sent.message_id)
    assert final["error"]["type"] == "NoOnlineWorkerError"
    assert "nobody-home" in final["error"]["message"]


async def test_state_that_is_too_large_fails_the_suspension_clearly(
    client: GatewayClient, settings: RedisSettings
) -> None:
    @agent("hoarder")
    async def hoarder(command: Command, context: AgentContext) -> object:
        context.state["blob"] = "x" * 100_000
        return await context.ask_user("ok?")

    async with running(hoarder, settings):
        sent = await client.send_message("hoarder", "hoard-s", "go")
        final = await final_of(client, "hoard-s", sent.message_id)
    assert final["status"] == "FAILED" and "context.state" in final["error"]["message"]


async def test_interrupt_cancels_the_running_task_and_runs_the_new_one(
    client: GatewayClient, settings: RedisSettings
) -> None:
    @agent("talker")
    async def talker(command: Command, context: AgentContext) -> str:
        assert isinstance(command, AskAgentCommand)
        if command.content == "long":
            for _ in range(1000):
                await context.check_cancelled()
                await asyncio.sleep(0.01)
        return f"said {command.content}"

    async with running(talker, settings):
        first = await client.send_message("talker", "talk-s", "long")
        for _ in range(100):
            record = await client.registry.get_execution("talk-s", first.execution_id)
            if record and record.status == "RUNNING":
                break
            await asyncio.sleep(0.02)
        second = await client.send_message(
            "talker", "talk-s", "short", multitask_strategy="interrupt"
        )
        assert second.disposition == "interrupt"
        first_final = await final_of(client, "talk-s", first.message_id)
        second_final = await final_of(client, "talk-s", second.message_id)
    assert first_final["status"] == "CANCELLED"
    assert first_final["error"]["message"] == f"interrupted by {second.message_id}"
    assert second_final == {**second_final, "status": "COMPLETED", "content": "said short"}


async def test_cancel_session_ends_the_running_task_and_the_queue(
    client: GatewayClient, settings: RedisSettings
) -> None:
    async with running(serial, settings):
        sent = [await client.send_message("serial", "all-s", f"m{i}") for i in range(3)]
        outcome = await client.cancel_session("all-s", cancel_mode="force")
        finals = [await final_of(client, "all-s", s.message_id) for s in sent]
        again = await client.send_message("serial", "all-s", "fresh", multitask_strategy="reject")
    assert outcome.count == 3
    assert [f["status"] for f in finals] == ["CANCELLED"] * 3
    assert again.success, again.error  # the session is free


async def test_a_rejected_send_raises_session_busy(
    client: GatewayClient, settings: RedisSettings
) -> None:
    async with running(serial, settings, multitask_strategy="reject"):
        first = await client.send_message("serial", "busy-s", "one")
        refused = await client.send_message("serial", "busy-s", "two")  # the agent type's rule
        with pytest.raises(SessionBusyError, match="busy-s"):
            refused.raise_for_status()
        await final_of(client, "busy-s", first.message_id)


async def test_sequential_calls_do_not_deepen_the_caller(
    client: GatewayClient, settings: RedisSettings
) -> None:
    async with running(sequencer, settings, max_call_depth=2), running(kid, settings):
        sent = await client.send_message("sequencer", "seq-s", "go")
        final = await final_of(client, "seq-s", sent.message_id)
    assert final["status"] == "COMPLETED", final
    assert final["content"] == "5 calls" and final["reply_data"] == {"depth": 0}
    kids = [
        r for r in await client.registry.list_executions("seq-s") if r.target_agent_type == "kid"
    ]
    assert [k.depth for k in kids] == [1] * 5


async def test_resending_a_finished_message_is_a_no_op(
    client: GatewayClient, settings: RedisSettings
) -> None:
    async with running(serial, settings):
        first = await client.send_message("serial", "dup-s", "once", message_id="msg-fixed")
        await final_of(client, "dup-s", first.message_id)
        again = await client.send_message("serial", "dup-s", "once", message_id="msg-fixed")
        other = await client.send_message("serial", "dup-s", "next", multitask_strategy="reject")
        await final_of(client, "dup-s", other.message_id)
    assert again.disposition == "duplicate" and again.execution_id == first.execution_id
    assert other.success  # the duplicate did not take the session
    records = await client.registry.list_executions("dup-s")
    assert [r.message_id for r in records].count("msg-fixed") == 1


async def test_handlers_cannot_set_the_states_the_scheduler_owns(
    client: GatewayClient, settings: RedisSettings
) -> None:
    @agent("sneaky")
    async def sneaky(command: Command, context: AgentContext) -> str:
        await context.update_execution_state("COMPLETED")
        return "unreachable"

    async with running(sneaky, settings):
        sent = await client.send_message("sneaky", "sneaky-s", "go")
        final = await final_of(client, "sneaky-s", sent.message_id)
    assert final["status"] == "FAILED" and "set by the scheduler" in final["error"]["message"]
