"""LangGraph Server API runs through ``byway serve``, driven by the official clients.

``langgraph-sdk`` against a server and two worker processes serving an unmodified
compiled graph (``tests.agents.lg_api_graphs``): a streamed run yields what
``graph.astream`` yields in process; ``wait``, background runs and ``join``; the join
stream after a ``Last-Event-ID``; a graph's error as the run's error event.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver

from tests.agents.lg_api_graphs import REPLY, builder
from tests.langgraph_api._runs_stack import ASK, EXPLODE, HI, Stack, new_thread, stack

pytestmark = pytest.mark.redis

MODES = ["values", "messages-tuple", "updates"]


@pytest.fixture(scope="module")
def served(redis_url: str) -> Iterator[Stack]:
    with stack(redis_url) as s:
        yield s


def shape(value: Any) -> Any:
    """What two runs of the graph share: messages as (type, content), no ids."""
    if isinstance(value, BaseMessage):
        return ("message", value.type, value.content)
    if isinstance(value, dict):
        if "type" in value and "content" in value:
            return ("message", value["type"], value["content"])
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [shape(v) for v in value]
    return value


def sse_parts(parts: list[Any]) -> list[tuple[str, Any]]:
    out = []
    for part in parts:
        if part.event == "messages":
            message, meta = part.data
            out.append(("messages", (shape(message), meta["langgraph_node"])))
        else:
            out.append((part.event, shape(part.data)))
    return out


async def in_process(graph_input: dict[str, Any]) -> list[tuple[str, Any]]:
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "in-process"}}
    out = []
    async for mode, chunk in graph.astream(
        graph_input, config, stream_mode=["values", "messages", "updates"]
    ):
        if mode == "messages":
            message, meta = chunk
            out.append(("messages", (shape(message), meta["langgraph_node"])))
        else:
            out.append((mode, shape(chunk)))
    return out


async def test_a_streamed_run_yields_what_astream_yields_in_process(served: Stack) -> None:
    sdk = served.sdk()
    thread = new_thread()
    parts = [
        part
        async for part in sdk.runs.stream(
            thread, "agent", input=HI, stream_mode=MODES, if_not_exists="create"
        )
    ]
    assert parts[0].event == "metadata" and parts[0].data["run_id"]
    streamed = sse_parts(parts[1:])
    assert streamed == await in_process(HI)
    # token by token, as the model streamed them
    tokens = [data[0][2] for event, data in streamed if event == "messages"]
    assert "".join(tokens) == REPLY and len(tokens) > 5
    # every frame names its Redis entry, in order
    ids = [part.id for part in parts[1:]]
    assert all(ids) and len(set(ids)) == len(ids)
    run = await sdk.runs.get(thread, parts[0].data["run_id"])
    assert run["status"] == "success" and run["thread_id"] == thread


async def test_wait_answers_the_final_values_and_background_runs_join(served: Stack) -> None:
    sdk = served.sdk()
    thread = new_thread()
    values = await sdk.runs.wait(thread, "agent", input=HI, if_not_exists="create")
    assert shape(values) == {
        "messages": [("message", "human", "hi"), ("message", "ai", REPLY)],
        "turns": 1,
    }
    run = await sdk.runs.create(thread, "agent", input=HI)
    assert run["status"] in ("pending", "running", "success")
    assert run["thread_id"] == thread and run["kwargs"]["input"] == HI
    joined = await sdk.runs.join(thread, run["run_id"])
    assert joined["turns"] == 2 and len(joined["messages"]) == 4
    assert (await sdk.runs.get(thread, run["run_id"]))["status"] == "success"
    listed = await sdk.runs.list(thread)
    assert listed[0]["run_id"] == run["run_id"] and len(listed) == 2
    assert {r["status"] for r in listed} == {"success"}
    # a stateless run: a thread of its own, gone once the run ends
    alone = await sdk.runs.wait(None, "agent", input=HI)
    assert alone["turns"] == 1 and alone["messages"][-1]["content"] == REPLY


async def test_the_join_stream_continues_after_the_last_event_id(served: Stack) -> None:
    sdk = served.sdk()
    thread = new_thread()
    parts = [
        part
        async for part in sdk.runs.stream(
            thread, "agent", input=HI, stream_mode=MODES, if_not_exists="create"
        )
    ]
    run_id = parts[0].data["run_id"]
    frames = parts[1:]
    cut = len(frames) // 2
    rest = [p async for p in sdk.runs.join_stream(thread, run_id, last_event_id=frames[cut].id)]
    assert [(p.event, p.id, p.data) for p in rest] == [
        (p.event, p.id, p.data) for p in frames[cut + 1 :]
    ]
    again = [p async for p in sdk.runs.join_stream(thread, run_id)]
    assert again[0].event == "metadata"
    assert [(p.event, p.id) for p in again[1:]] == [(p.event, p.id) for p in frames]
    only_updates = [p async for p in sdk.runs.join_stream(thread, run_id, stream_mode="updates")]
    assert [p.event for p in only_updates[1:]] == ["updates", "updates"]


async def test_a_graph_error_is_the_runs_error_event(served: Stack) -> None:
    sdk = served.sdk()
    thread = new_thread()
    parts = [
        part
        async for part in sdk.runs.stream(
            thread, "agent", input=EXPLODE, stream_mode="updates", if_not_exists="create"
        )
    ]
    assert parts[-1].event == "error"
    assert parts[-1].data == {"error": "ValueError", "message": "asked to explode"}
    run = await sdk.runs.get(thread, parts[0].data["run_id"])
    assert run["status"] == "error"
    with pytest.raises(Exception, match="asked to explode"):
        await sdk.runs.wait(thread, "agent", input=EXPLODE)


async def test_an_interrupt_ends_the_run_and_wait_shows_it(served: Stack) -> None:
    sdk = served.sdk()
    thread = new_thread()
    values = await sdk.runs.wait(thread, "agent", input=ASK, if_not_exists="create")
    (pending,) = values["__interrupt__"]
    assert pending["value"] == {"question": "send the draft?"} and pending["id"]
    (run,) = await sdk.runs.list(thread)
    assert run["status"] == "success"  # the run ended; the thread waits
    # the answer, by interrupt id, reaches Command(resume=...) as given
    parts = [
        part
        async for part in sdk.runs.stream(
            thread, "agent", command={"resume": {pending["id"]: "ship it"}}, stream_mode="updates"
        )
    ]
    assert parts[-1].data["review"]["messages"][0]["content"] == "reviewed: ship it"
    assert parts[0].data["run_id"] != run["run_id"]


async def test_stream_modes_events_and_custom(served: Stack) -> None:
    sdk = served.sdk()
    thread = new_thread()
    parts = [
        part
        async for part in sdk.runs.stream(
            thread, "agent", input=HI, stream_mode=["events", "messages"], if_not_exists="create"
        )
    ]
    events = [p.data for p in parts if p.event == "events"]
    assert {"on_chain_start", "on_chat_model_stream", "on_chain_end"} <= {
        e["event"] for e in events
    }
    partial = [p.data for p in parts if p.event == "messages/partial"]
    assert partial[-1][0]["content"] == REPLY  # the message so far, as LangGraph Server says
    assert any(p.event == "messages/metadata" for p in parts)


async def test_bad_requests_are_refused_naming_the_field(served: Stack) -> None:
    async with served.http() as http:
        thread = new_thread()
        url = f"/threads/{thread}/runs/stream"
        cases = [
            ({"assistant_id": "nobody", "input": HI}, 404, "assistant_id"),
            ({"assistant_id": "agent", "input": HI}, 404, "thread_id"),  # no such thread
            ({"assistant_id": "agent", "stream_mode": "tools", "if_not_exists": "create"}, 422, "stream_mode"),
            ({"assistant_id": "agent", "after_seconds": 5, "if_not_exists": "create"}, 422, "after_seconds"),
            ({"assistant_id": "agent", "webhook": "http://x", "if_not_exists": "create"}, 422, "webhook"),
            (
                {"assistant_id": "agent", "config": {"configurable": {"__pregel_x": 1}}, "if_not_exists": "create"},
                422,
                "config.configurable.__pregel_x",
            ),
        ]  # fmt: skip
        for body, status, field in cases:
            response = await http.post(url, json=body)
            assert response.status_code == status, (body, response.text)
            assert response.json()["field"] == field
        bogus = await http.get(f"/threads/{thread}/runs/not-a-run")
        assert bogus.status_code == 404
