"""An interrupt of a LangGraph Server API run answered after the worker that paused was
SIGKILLed: the answer (``command={"resume": ...}``) resumes the graph on the other
worker, from the checkpoint in Redis."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import httpx
import pytest

from tests.agents.lg_api_graphs import QUESTION
from tests.conftest import stop_process
from tests.langgraph_api._runs_stack import ASK, Stack, collect, stack

pytestmark = pytest.mark.redis


@pytest.fixture
def own(redis_url: str) -> Iterator[Stack]:
    with stack(redis_url) as s:
        yield s


async def test_an_interrupt_is_answered_after_the_paused_worker_is_killed(own: Stack) -> None:
    sdk = own.sdk()
    thread = (await sdk.threads.create(metadata={"case": "failover"}))["thread_id"]
    parts = await collect(sdk.runs.stream(thread, "agent", input=ASK, stream_mode="updates"))
    run_id = parts[0].data["run_id"]
    (pending,) = parts[-1].data["__interrupt__"]
    assert pending["value"] == QUESTION
    async with own.byway() as byway:
        record = await byway.registry.get_execution_by_message(thread, run_id)
    assert record is not None and record.status == "WAITING_USER"
    # the question is the thread's state, as any replica reads it
    state = await sdk.threads.get_state(thread)
    assert [i["value"] for i in state["interrupts"]] == [QUESTION]
    assert state["next"] and [i["id"] for i in state["interrupts"]] == [pending["id"]]
    assert (await sdk.threads.get(thread))["status"] == "interrupted"
    paused = own.workers[record.worker_id]
    paused.send_signal(signal.SIGKILL)
    paused.wait()
    parts = await collect(
        sdk.runs.stream(thread, "agent", command={"resume": "approved"}, stream_mode="updates")
    )
    updates = [p.data for p in parts if p.event == "updates"]
    assert [u["review"]["messages"][0]["content"] for u in updates] == ["reviewed: approved"]
    async with own.byway() as byway:
        record = await byway.registry.get_execution_by_message(thread, run_id)
    assert record is not None and record.status == "COMPLETED"
    survivor = next(w for w, proc in own.workers.items() if proc is not paused)
    assert record.worker_id == survivor
    (latest, first) = await sdk.runs.list(thread)
    assert latest["status"] == first["status"] == "success"
    state = await sdk.threads.get_state(thread)
    assert state["interrupts"] == [] and state["next"] == []
    assert state["values"]["messages"][-1]["content"] == "reviewed: approved"
    # every checkpoint of both runs, newest first, the paused one among them
    history = await sdk.threads.get_history(thread, limit=50)
    assert history[0]["checkpoint"]["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
    assert len(history) >= 3
    assert any(h["next"] for h in history[1:])
    steps = [h["metadata"]["step"] for h in history]
    assert steps == sorted(steps, reverse=True)
    # with no worker of the graph online, a run is refused, saying so
    stop_process(own.workers[survivor])
    async with own.byway() as byway:  # the killed worker's lease lapses in its own time
        for _ in range(600):
            if not await byway.registry.get_online_workers("agent"):
                break
            await asyncio.sleep(0.1)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await sdk.runs.wait(thread, "agent", input=ASK)
    assert refused.value.response.status_code == 503
    assert refused.value.response.json()["field"] == "assistant_id"
