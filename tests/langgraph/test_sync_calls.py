"""The Redis checkpointer serves sync calls made from worker threads: a sync node that
invokes a subgraph (which interrupts, twice), sync state reads and updates from a thread
around a subgraph's breakpoint, and such a graph served by two worker processes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from byway_langgraph import RedisCheckpointSaver
from langgraph.types import Command

from byway import GatewayClient, RedisSettings
from tests.agents.lg_subgraphs import sync_subgraph_parent, weather_parent
from tests.conftest import spawn_worker, stop_process, until_status, wait_online

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


def _saver(client: GatewayClient, settings: RedisSettings) -> RedisCheckpointSaver:
    return RedisCheckpointSaver(client.redis, namespace=settings.namespace)


async def _questions(graph: Any, graph_input: Any, config: Any) -> list[Any]:
    """Run until the graph stops; the questions it stopped at."""
    asked: list[Any] = []
    async for chunk in graph.astream(graph_input, config, stream_mode="updates"):
        asked += [i.value["question"] for i in chunk.get("__interrupt__", ())]
    return asked


async def test_a_sync_node_invoking_a_subgraph_that_interrupts_twice_resumes_each_time(
    client: GatewayClient, settings: RedisSettings
) -> None:
    graph = sync_subgraph_parent().copy(update={"checkpointer": _saver(client, settings)})
    config = {"configurable": {"thread_id": "sync-sub-1"}}
    assert await _questions(graph, {"topic": "tea", "steps": []}, config) == ["first about tea?"]
    assert await _questions(graph, Command(resume="green"), config) == ["second about tea?"]
    assert await _questions(graph, Command(resume="hot"), config) == []
    state = await graph.aget_state(config)
    assert state.next == ()
    assert state.values["steps"] == ["prepare", "sub[first=green second=hot]"]


async def test_a_subgraph_breakpoint_with_state_updates_from_a_thread(
    client: GatewayClient, settings: RedisSettings
) -> None:
    graph = weather_parent().copy(update={"checkpointer": _saver(client, settings)})
    config = {"configurable": {"thread_id": "weather-1"}}
    async for _ in graph.astream({"question": "what is the weather in Lisbon?"}, config):
        pass
    # sync calls from a thread (as sync application code around the graph makes them)
    state = await asyncio.to_thread(graph.get_state, config, subgraphs=True)
    assert state.next == ("weather",)
    sub = state.tasks[0].state
    assert sub.next == ("forecast",) and sub.values["city"] == "Lisbon"
    await asyncio.to_thread(graph.update_state, sub.config, {"city": "Porto"}, "pick_city")
    corrected = await graph.aget_state(config, subgraphs=True)
    assert corrected.tasks[0].state.values["city"] == "Porto"
    async for _ in graph.astream(None, config):
        pass
    final = await asyncio.to_thread(graph.get_state, config)
    assert final.next == ()
    assert final.values["answer"] == "sunny in Porto"
    history = await asyncio.to_thread(lambda: list(graph.get_state_history(config)))
    assert len(history) >= 3  # sync list() pages through the thread's checkpoints


async def test_a_sync_call_on_the_loop_thread_is_refused_saying_what_to_use(
    client: GatewayClient, settings: RedisSettings
) -> None:
    saver = _saver(client, settings)
    config = {"configurable": {"thread_id": "on-loop"}}
    assert await saver.aget_tuple(config) is None
    with pytest.raises(RuntimeError, match=r"block that loop forever; call ainvoke\(\)"):
        saver.get_tuple(config)


def test_a_sync_call_with_no_loop_running_says_to_use_the_async_api(
    settings: RedisSettings,
) -> None:
    saver = RedisCheckpointSaver.from_settings(settings)
    with pytest.raises(NotImplementedError, match="use the async API"):
        saver.get_tuple({"configurable": {"thread_id": "no-loop"}})


async def test_a_sync_subgraph_graph_completes_under_two_worker_processes(
    client: GatewayClient, settings: RedisSettings
) -> None:
    procs = {
        w: spawn_worker("tests.agents.lg_subgraphs:sync_subgraph", settings, worker_id=w)
        for w in ("sub-a", "sub-b")
    }
    try:
        await wait_online(client, "sync-sub", count=2, timeout=60)
        sent = await client.send_message("sync-sub", "lg-sync-sub", "tea")
        asked = await until_status(client, "lg-sync-sub", sent.message_id, "WAITING_USER")
        assert stop_process(procs.pop(asked.worker_id)) == 0  # the other worker goes on
        await client.resume("lg-sync-sub", sent.message_id, "green")
        assert await _prompts(client, "lg-sync-sub", 2) == ["first about tea?", "second about tea?"]
        await client.resume("lg-sync-sub", sent.message_id, "hot")
        final = await client.wait_for_final("lg-sync-sub", sent.message_id, timeout=30)
    finally:
        for proc in procs.values():
            stop_process(proc)
    assert final.data["status"] == "COMPLETED", final.data
    assert final.data["content"] == "prepare, sub[first=green second=hot]"


async def _prompts(client: GatewayClient, session: str, count: int) -> list[str]:
    """The session's questions, once it has asked ``count`` of them (30 s at most)."""
    for _ in range(60):
        events = [e async for e in client.stream(session, idle_timeout=0.5)]
        prompts = [str(e.data["prompt"]) for e in events if e.data.get("kind") == "ask_user"]
        if len(prompts) >= count:
            return prompts
    raise AssertionError(f"{session} asked fewer than {count} questions")
