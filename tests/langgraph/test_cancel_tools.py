"""A run cancelled while its tool runs leaves the thread usable: its open tool calls are
answered as cancelled (and the session told so), for both prebuilt agents, whether the
cancel is graceful, forced or a new message interrupting; and calls a stopped run left
open are closed when the next message arrives. The model refuses, as real chat APIs do,
a history with an unanswered tool call; two worker processes serve each agent."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from byway_langgraph import RedisCheckpointSaver

from byway import Event, EventType, GatewayClient, RedisSettings
from tests.conftest import spawn_worker, stop_process, wait_online

pytestmark = [pytest.mark.redis, pytest.mark.timeout(180)]

AGENTS = {"strict-react": "react", "strict-agent": "agent"}


@pytest.fixture(params=sorted(AGENTS))
def agent_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def workers(agent_type: str, settings: RedisSettings) -> Iterator[list[subprocess.Popen[bytes]]]:
    target = f"tests.agents.lg_tool_agents:{AGENTS[agent_type]}"
    procs = [spawn_worker(target, settings) for _ in range(2)]
    try:
        yield procs
    finally:
        for proc in procs:
            stop_process(proc)


async def _events(client: GatewayClient, session: str) -> list[Event]:
    return [e async for e in client.stream(session, idle_timeout=0.3)]


async def _in_tool(client: GatewayClient, session: str, message_id: str) -> None:
    """Wait until the run's tool call is out (the slow tool is then running)."""
    for _ in range(300):
        for event in await _events(client, session):
            if event.message_id == message_id and event.data.get("tool_calls"):
                await asyncio.sleep(0.5)  # inside the tool
                return
    raise AssertionError(f"{message_id} never called its tool")


async def _turn(client: GatewayClient, agent_type: str, session: str, text: str) -> Event:
    sent = await client.send_message(agent_type, session, text)
    return await client.wait_for_final(session, sent.message_id, timeout=30)


async def _two_more_turns(client: GatewayClient, agent_type: str, session: str) -> None:
    for text in ("tea", "cake"):
        final = await _turn(client, agent_type, session, text)
        assert final.data["status"] == "COMPLETED", final.data
        assert final.data["content"] == f"done: {text} finished"


def _cancelled_responses(events: list[Event], message_id: str) -> list[dict[str, Any]]:
    return [
        r
        for e in events
        if e.message_id == message_id and e.event_type == EventType.ANSWER_DELTA
        for r in e.data.get("tool_responses") or []
        if r.get("status") == "cancelled"
    ]


@pytest.mark.parametrize("mode", ["graceful", "force"])
async def test_a_cancel_mid_tool_leaves_the_thread_usable(
    mode: str,
    agent_type: str,
    workers: list[subprocess.Popen[bytes]],
    client: GatewayClient,
    settings: RedisSettings,
) -> None:
    session = f"cancel-{mode}-{agent_type}"
    await wait_online(client, agent_type, count=2, timeout=60)
    sent = await client.send_message(agent_type, session, "a slow job")
    await _in_tool(client, session, sent.message_id)
    await client.cancel_task(sent.message_id, session, reason="user stop", cancel_mode=mode)
    cancelled = await client.wait_for_final(session, sent.message_id, timeout=30)
    assert cancelled.data["status"] == "CANCELLED"
    [closed] = _cancelled_responses(await _events(client, session), sent.message_id)
    assert closed["name"] == "work" and closed["content"] == "cancelled: user stop"
    await _two_more_turns(client, agent_type, session)
    # the thread holds the cancelled call's answer right after it
    saver = RedisCheckpointSaver(client.redis, namespace=settings.namespace)
    state = await saver.aget_tuple({"configurable": {"thread_id": f"{session}:{agent_type}"}})
    assert state is not None
    kinds = [(m.type, m.content) for m in state.checkpoint["channel_values"]["messages"]][:4]
    assert kinds[0] == ("human", "a slow job") and kinds[2] == ("tool", "cancelled: user stop")


async def test_a_new_message_interrupting_a_tool_call_runs_on_a_consistent_thread(
    agent_type: str,
    workers: list[subprocess.Popen[bytes]],
    client: GatewayClient,
) -> None:
    session = f"interrupt-{agent_type}"
    await wait_online(client, agent_type, count=2, timeout=60)
    first = await client.send_message(agent_type, session, "a slow job")
    await _in_tool(client, session, first.message_id)
    second = await client.send_message(agent_type, session, "tea", multitask_strategy="interrupt")
    cancelled = await client.wait_for_final(session, first.message_id, timeout=30)
    final = await client.wait_for_final(session, second.message_id, timeout=30)
    assert cancelled.data["status"] == "CANCELLED"
    assert final.data["status"] == "COMPLETED", final.data
    assert final.data["content"] == "done: tea finished"
    [closed] = _cancelled_responses(await _events(client, session), first.message_id)
    assert closed["content"] == f"cancelled: interrupted by {second.message_id}"
    await _two_more_turns(client, agent_type, session)


async def test_calls_left_open_by_a_stopped_run_are_closed_before_the_next_message(
    agent_type: str,
    workers: list[subprocess.Popen[bytes]],
    client: GatewayClient,
    settings: RedisSettings,
) -> None:
    """What a worker that died mid-tool leaves behind (and no retry continued): the
    thread's last checkpoint has the call, and nothing answered it."""
    from tests.agents import lg_tool_agents

    build = lg_tool_agents.react_agent if agent_type == "strict-react" else lg_tool_agents.v1_agent
    saver = RedisCheckpointSaver(client.redis, namespace=settings.namespace)
    graph = build().copy(update={"checkpointer": saver})
    session = f"stopped-{agent_type}"
    thread = {"configurable": {"thread_id": f"{session}:{agent_type}"}}
    run = asyncio.ensure_future(graph.ainvoke({"messages": [("user", "a slow job")]}, thread))
    for _ in range(200):
        state = await graph.aget_state(thread)
        if state.next == ("tools",):
            break
        await asyncio.sleep(0.05)
    run.cancel()  # stopped mid-tool, nothing cleaned up
    with pytest.raises(asyncio.CancelledError):
        await run
    assert (await graph.aget_state(thread)).next == ("tools",)
    await wait_online(client, agent_type, count=2, timeout=60)
    sent = await client.send_message(agent_type, session, "tea")
    final = await client.wait_for_final(session, sent.message_id, timeout=30)
    assert final.data["status"] == "COMPLETED", final.data
    assert final.data["content"] == "done: tea finished"
    [closed] = _cancelled_responses(await _events(client, session), sent.message_id)
    assert closed["content"] == "cancelled: the run stopped before the tool answered"
    final = await _turn(client, agent_type, session, "cake")
    assert final.data["content"] == "done: cake finished"
