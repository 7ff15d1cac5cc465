"""The Redis checkpointer passes LangGraph's checkpointer conformance suite, on standalone
Redis and on a Redis Cluster, and a real graph resumes from it in a fresh saver."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from byway_langgraph import RedisCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate

from byway import RedisSettings

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]


def _suite(settings: RedisSettings) -> Any:
    @checkpointer_test(name="RedisCheckpointSaver")
    async def saver() -> AsyncIterator[RedisCheckpointSaver]:
        # every instance its own namespace: the suite needs them isolated
        isolated = RedisSettings(
            url=settings.url, namespace=f"{settings.namespace}-{uuid.uuid4().hex[:6]}"
        )
        client = isolated.client()
        yield RedisCheckpointSaver(client, namespace=isolated.namespace)
        keys = [k async for k in client.scan_iter(match=f"{isolated.namespace}:*")]
        for key in keys:
            await client.delete(key)
        await client.aclose()

    return saver


async def test_the_redis_checkpointer_passes_langgraphs_conformance_suite(
    settings: RedisSettings,
) -> None:
    report = await validate(_suite(settings))
    report.print_report()
    assert report.passed_all_base()


async def test_a_graph_interrupted_with_one_saver_resumes_with_another(
    settings: RedisSettings,
) -> None:
    """What a worker relies on: a run interrupted in one process continues in another
    from the checkpoint in Redis, and the nodes that completed do not run again."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    runs: list[str] = []

    class State(TypedDict):
        steps: list[str]

    def plan(state: State) -> dict[str, Any]:
        runs.append("plan")
        return {"steps": [*state["steps"], "planned"]}

    def approve(state: State) -> dict[str, Any]:
        runs.append("approve")
        answer = interrupt({"question": "go ahead?"})
        return {"steps": [*state["steps"], f"approved:{answer}"]}

    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("approve", approve)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "approve")
    builder.add_edge("approve", END)
    thread = {"configurable": {"thread_id": f"graph-{uuid.uuid4().hex[:8]}"}}

    first = RedisCheckpointSaver.from_settings(settings)
    graph = builder.compile(checkpointer=first)
    out = await graph.ainvoke({"steps": []}, thread)
    assert out["__interrupt__"][0].value == {"question": "go ahead?"}
    await first.redis.aclose()

    second = RedisCheckpointSaver.from_settings(settings)  # another worker, say
    graph = builder.compile(checkpointer=second)
    state = await graph.aget_state(thread)
    assert state.next == ("approve",) and state.values == {"steps": ["planned"]}
    out = await graph.ainvoke(Command(resume="yes"), thread)
    assert out == {"steps": ["planned", "approved:yes"]}
    assert runs == ["plan", "approve", "approve"]  # plan ran once; approve re-entered
    history = [s async for s in graph.aget_state_history(thread)]
    assert len(history) >= 4
    await second.adelete_thread(thread["configurable"]["thread_id"])
    assert await second.aget_tuple(thread) is None
    await second.redis.aclose()


async def test_a_thread_expires_with_its_ttl(settings: RedisSettings) -> None:
    from langgraph.checkpoint.base import empty_checkpoint

    client = settings.client()
    saver = RedisCheckpointSaver(client, namespace=settings.namespace, ttl_seconds=60)
    config = {"configurable": {"thread_id": "ttl-thread", "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    saved = await saver.aput(config, checkpoint, {"source": "input", "step": -1}, {})
    await saver.aput_writes(saved, [("channel", "value")], "task-1")
    keys = [k async for k in client.scan_iter(match=f"{settings.namespace}:lg:{{ttl-thread}}*")]
    assert keys
    for key in keys:
        assert 0 < await client.ttl(key) <= 60, key
    await client.aclose()
