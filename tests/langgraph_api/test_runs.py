"""LangGraph Server API runs through ``byway serve``, driven by the official clients.

``langgraph-sdk`` and ``RemoteGraph`` against a server and two worker processes serving
an unmodified compiled graph (``tests.agents.lg_api_graphs``): a streamed run yields what
``graph.astream`` yields in process; ``wait``, background runs and ``join``; the join
stream after a ``Last-Event-ID``; a graph's error as the run's error event; interrupts
and their answers; cancel (a long node stops, the run is interrupted) and multitask
strategies; ``RemoteGraph`` as a node of an in-process graph; tenancy (another tenant's
key reaches none of a thread's runs, no key reaches nothing). One server and its workers
serve the whole module (starting them is most of its time).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.pregel.remote import RemoteGraph
from langgraph.types import Command

from tests.agents.lg_api_graphs import QUESTION, REPLY, builder
from tests.langgraph_api._runs_stack import (
    ASK,
    CRAWL,
    EXPLODE,
    HI,
    KEY_A,
    KEY_B,
    Stack,
    collect,
    new_thread,
    stack,
)

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


async def test_breakpoints_and_commands_run_as_langgraph_runs_them(served: Stack) -> None:
    sdk = served.sdk()
    thread = new_thread()
    parts = await collect(
        sdk.runs.stream(
            thread,
            "agent",
            input=HI,
            stream_mode="updates",
            interrupt_before=["tally"],
            if_not_exists="create",
        )
    )
    assert [next(iter(p.data)) for p in parts[1:]] == ["reply", "__interrupt__"]
    # no input at a breakpoint: the thread goes on from it
    parts = await collect(sdk.runs.stream(thread, "agent", stream_mode="updates"))
    assert [p.data for p in parts[1:]] == [{"tally": {"turns": 1}}]
    # a command as the input: its update, then its goto
    command = {"update": {"turns": 10}, "goto": "tally"}
    values = await sdk.runs.wait(new_thread(), "agent", command=command, if_not_exists="create")
    graph = builder.compile(checkpointer=InMemorySaver())
    expected = await graph.ainvoke(
        Command(update={"turns": 10}, goto="tally"), {"configurable": {"thread_id": "t"}}
    )
    assert shape(values) == shape(expected)


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
            ({"assistant_id": "agent", "config": {"callbacks": []}, "if_not_exists": "create"}, 422, "config.callbacks"),
            ({"assistant_id": "agent", "config": {"recursion_limit": "x"}, "if_not_exists": "create"}, 422, "config.recursion_limit"),
            ({"assistant_id": "agent", "command": {"resume": 1, "jump": 2}, "if_not_exists": "create"}, 422, "command.jump"),
        ]  # fmt: skip
        for body, status, field in cases:
            response = await http.post(url, json=body)
            assert response.status_code == status, (body, response.text)
            assert response.json()["field"] == field
        bogus = await http.get(f"/threads/{thread}/runs/not-a-run")
        assert bogus.status_code == 404


# -- stopping runs, tenancy --------------------------------------------------------


async def test_cancel_stops_a_long_node_and_the_run_is_interrupted(served: Stack) -> None:
    sdk = served.sdk()
    thread = new_thread()
    run = await sdk.runs.create(
        thread, "agent", input=CRAWL, stream_mode=["custom", "updates"], if_not_exists="create"
    )
    ticks: list[int] = []
    events: list[str] = []
    async for part in sdk.runs.join_stream(thread, run["run_id"]):
        events.append(part.event)
        if part.event == "custom":
            ticks.append(part.data["tick"])
            if len(ticks) == 3:
                await sdk.runs.cancel(thread, run["run_id"])
    # the stream ended without the node's end: it never finished its 1200 ticks
    assert "updates" not in events and ticks[:3] == [0, 1, 2] and ticks[-1] < 1199
    assert (await sdk.runs.get(thread, run["run_id"]))["status"] == "interrupted"
    async with served.byway() as byway:
        record = await byway.registry.get_execution_by_message(thread, run["run_id"])
    assert record is not None and record.status == "CANCELLED"
    values = await sdk.runs.join(thread, run["run_id"])
    assert "crawled to the end" not in str(values)
    # a run that has stopped cannot be cancelled again
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await sdk.runs.cancel(thread, run["run_id"])
    assert refused.value.response.status_code == 409
    # the thread takes its next run
    after = await sdk.runs.wait(thread, "agent", input=HI)
    assert after["messages"][-1]["content"] == REPLY


async def test_a_stream_closed_by_its_client_cancels_the_run_when_asked(served: Stack) -> None:
    sdk = served.sdk()
    thread = new_thread()
    body = {
        "assistant_id": "agent",
        "input": CRAWL,
        "stream_mode": "custom",
        "on_disconnect": "cancel",
        "if_not_exists": "create",
    }
    async with (
        served.http() as http,
        http.stream("POST", f"/threads/{thread}/runs/stream", json=body) as response,
    ):
        assert response.status_code == 200
        run_path = response.headers["content-location"]
        assert response.headers["location"] == f"{run_path}/stream"
        async for line in response.aiter_lines():
            if line.startswith("event: custom"):
                break  # the client goes away mid-run
    run_id = run_path.rsplit("/", 1)[1]
    values = await sdk.runs.join(thread, run_id)  # the run ends: it was cancelled
    assert "crawled to the end" not in str(values)
    assert (await sdk.runs.get(thread, run_id))["status"] == "interrupted"


async def test_multitask_strategies_reject_and_interrupt(served: Stack) -> None:
    sdk = served.sdk()
    thread = new_thread()
    first = await sdk.runs.create(
        thread, "agent", input=CRAWL, stream_mode="custom", if_not_exists="create"
    )
    async for part in sdk.runs.join_stream(thread, first["run_id"]):
        if part.event == "custom":
            break  # it runs
    with pytest.raises(httpx.HTTPStatusError) as busy:
        await sdk.runs.create(thread, "agent", input=HI, multitask_strategy="reject")
    assert busy.value.response.status_code == 409
    values = await sdk.runs.wait(thread, "agent", input=HI, multitask_strategy="interrupt")
    assert values["messages"][-1]["content"] == REPLY
    assert (await sdk.runs.get(thread, first["run_id"]))["status"] == "interrupted"


async def test_another_tenant_reaches_none_of_a_threads_runs(served: Stack) -> None:
    mine, theirs = served.sdk(), served.sdk(KEY_B)
    thread = new_thread()
    values = await mine.runs.wait(thread, "agent", input=ASK, if_not_exists="create")
    assert values["__interrupt__"][0]["value"] == QUESTION
    (run,) = await mine.runs.list(thread)
    rid = run["run_id"]
    attempts = {
        "get": lambda: theirs.runs.get(thread, rid),
        "list": lambda: theirs.runs.list(thread),
        "join": lambda: theirs.runs.join(thread, rid),
        "join_stream": lambda: collect(theirs.runs.join_stream(thread, rid)),
        "cancel": lambda: theirs.runs.cancel(thread, rid),
        "delete": lambda: theirs.runs.delete(thread, rid),
        "resume": lambda: collect(theirs.runs.stream(thread, "agent", command={"resume": "no"})),
        "resume, creating": lambda: collect(
            theirs.runs.stream(thread, "agent", command={"resume": "no"}, if_not_exists="create")
        ),
        "wait": lambda: theirs.runs.wait(thread, "agent", input=HI),
        "create": lambda: theirs.runs.create(thread, "agent", input=HI, if_not_exists="create"),
    }
    for name, attempt in attempts.items():
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await attempt()
        assert refused.value.response.status_code == 404, name
    async with served.http(key=None) as anonymous:
        for response in (
            await anonymous.get(f"/threads/{thread}/runs/{rid}"),
            await anonymous.post(f"/threads/{thread}/runs/stream", json={"assistant_id": "agent"}),
            await anonymous.post("/runs/wait", json={"assistant_id": "agent", "input": HI}),
        ):
            assert response.status_code == 401
            assert response.json()["field"] == "x-api-key"
    # the thread still waits for its own tenant's answer
    parts = await collect(
        mine.runs.stream(thread, "agent", command={"resume": "mine"}, stream_mode="updates")
    )
    assert parts[-1].data["review"]["messages"][0]["content"] == "reviewed: mine"


# -- RemoteGraph -----------------------------------------------------------------------


def parent_of(remote: RemoteGraph) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("agent", remote)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    return builder.compile(checkpointer=InMemorySaver())


async def test_a_remote_graph_as_a_node_invokes_and_streams(served: Stack) -> None:
    parent = parent_of(RemoteGraph("agent", url=served.url, api_key=KEY_A))
    config = {"configurable": {"thread_id": new_thread()}}
    out = await parent.ainvoke({"messages": [HumanMessage("hi")]}, config)
    assert [(m.type, m.content) for m in out["messages"]] == [("human", "hi"), ("ai", REPLY)]
    # a second turn on the same (remote) thread
    chunks = [
        chunk
        async for chunk in parent.astream(
            {"messages": [HumanMessage("again")]}, config, stream_mode="updates"
        )
    ]
    (update,) = chunks
    contents = [m["content"] for m in update["agent"]["messages"]]
    assert contents == ["hi", REPLY, "again", REPLY]
    # the remote graph's own steps, as a subgraph's
    fresh = {"configurable": {"thread_id": new_thread()}}
    nested = [
        (ns, chunk)
        async for ns, chunk in parent.astream(
            {"messages": [HumanMessage("hi")]}, fresh, stream_mode="updates", subgraphs=True
        )
    ]
    inner = [chunk for ns, chunk in nested if ns and ns[0].startswith("agent:")]
    assert [next(iter(c)) for c in inner] == ["reply", "tally"]


async def test_a_remote_graph_streams_tokens_by_itself(served: Stack) -> None:
    remote = RemoteGraph("agent", url=served.url, api_key=KEY_A)
    tokens = [
        message["content"]
        async for message, meta in remote.astream(
            {"messages": [{"role": "user", "content": "hi"}]}, stream_mode="messages"
        )
        if meta.get("langgraph_node") == "reply"
    ]
    assert "".join(tokens) == REPLY and len(tokens) > 5


async def test_an_interrupt_inside_the_remote_graph_surfaces(served: Stack) -> None:
    parent = parent_of(RemoteGraph("agent", url=served.url, api_key=KEY_A))
    thread = new_thread()
    config = {"configurable": {"thread_id": thread}}
    out = await parent.ainvoke({"messages": [HumanMessage("ask before sending")]}, config)
    (surfaced,) = out["__interrupt__"]
    assert surfaced.value == QUESTION
    state = await parent.aget_state(config)
    assert state.next == ("agent",)
    assert [i.value for i in state.interrupts] == [QUESTION]
    # the remote thread (the caller's thread id) waits for the answer too
    sdk = served.sdk()
    (run,) = await sdk.runs.list(thread)
    assert run["status"] == "success"
    answered = await sdk.runs.wait(thread, "agent", command={"resume": "fine"})
    assert answered["messages"][-1]["content"] == "reviewed: fine"
