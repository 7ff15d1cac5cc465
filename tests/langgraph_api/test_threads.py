"""The LangGraph Server API's threads on ``byway serve``, through the official
``langgraph-sdk`` client and ``RemoteGraph``: create, get, update, delete, search, count,
copy; state, history and state updates (on a worker process of the thread's graph); and
tenancy (another tenant's thread is 404 on every route)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from byway_langgraph._thread_state import record_thread_state
from byway_langgraph.checkpoint import RedisCheckpointSaver
from langchain_core.messages import HumanMessage
from langgraph.pregel.remote import RemoteGraph
from langgraph.types import Command
from langgraph_sdk import get_client
from langgraph_sdk.errors import BadRequestError, ConflictError, NotFoundError

from byway import GatewayClient, RedisSettings
from tests.agents.lg_state_graphs import nested_graph, review_graph
from tests.conftest import spawn_server, spawn_worker, stop_process, until_status, wait_online

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

KEYS = {"acme": "acme-key-0123456789", "globex": "globex-key-0123456789"}
QUESTION = {"question": "publish the draft?"}


@pytest.fixture
def server(settings: RedisSettings, redis: object) -> Iterator[str]:
    keys = ",".join(f"{tenant}={key}" for tenant, key in KEYS.items())
    proc, url = spawn_server(settings, env={"BYWAY_SERVER_API_KEYS": keys})
    yield url
    stop_process(proc)


def _graph(client: GatewayClient, settings: RedisSettings) -> Any:
    """The test graph in this process, on the checkpointer its workers use."""
    saver = RedisCheckpointSaver(client.redis, namespace=settings.namespace)
    return review_graph.copy(update={"checkpointer": saver})


async def _run_to_review(client: GatewayClient, settings: RedisSettings, thread_id: str) -> Any:
    """Run the graph on ``thread_id`` until it asks for a review, and record its state
    as the run path does when a run stops."""
    graph = _graph(client, settings)
    config = {"configurable": {"thread_id": thread_id}}
    await graph.ainvoke({"messages": [HumanMessage(content="write it")]}, config)
    await record_thread_state(client.redis, settings.keys, thread_id, graph, config)
    return graph


async def test_threads_are_created_read_updated_searched_and_deleted(server: str) -> None:
    sdk = get_client(url=server, api_key=KEYS["acme"])
    blue = await sdk.threads.create(metadata={"team": "blue", "level": 1})
    assert blue["status"] == "idle"
    assert blue["metadata"] == {"team": "blue", "level": 1}
    assert blue["values"] is None and blue["interrupts"] == {}
    assert await sdk.threads.get(blue["thread_id"]) == blue
    red = await sdk.threads.create(thread_id="thread-red", metadata={"team": "red"})
    assert red["thread_id"] == "thread-red"
    with pytest.raises(ConflictError):
        await sdk.threads.create(thread_id="thread-red")
    again = await sdk.threads.create(thread_id="thread-red", if_exists="do_nothing")
    assert again["metadata"] == {"team": "red"}

    updated = await sdk.threads.update(blue["thread_id"], metadata={"owner": "ann"})
    assert updated["metadata"] == {"team": "blue", "level": 1, "owner": "ann"}
    assert updated["updated_at"] >= blue["updated_at"]

    assert [t["thread_id"] for t in await sdk.threads.search(metadata={"team": "blue"})] == [
        blue["thread_id"]
    ]
    assert await sdk.threads.search(metadata={"team": "green"}) == []
    assert {t["thread_id"] for t in await sdk.threads.search()} == {blue["thread_id"], "thread-red"}
    assert len(await sdk.threads.search(limit=1)) == 1
    assert [t["thread_id"] for t in await sdk.threads.search(ids=["thread-red"])] == ["thread-red"]
    assert len(await sdk.threads.search(status="idle")) == 2
    assert await sdk.threads.search(status="busy") == []
    assert await sdk.threads.count() == 2
    assert await sdk.threads.count(metadata={"owner": "ann"}) == 1

    await sdk.threads.delete(blue["thread_id"])
    with pytest.raises(NotFoundError):
        await sdk.threads.get(blue["thread_id"])
    assert await sdk.threads.count() == 1


async def test_the_state_after_a_run_shows_values_next_tasks_and_interrupts(
    client: GatewayClient, settings: RedisSettings, server: str
) -> None:
    sdk = get_client(url=server, api_key=KEYS["acme"])
    thread = await sdk.threads.create(graph_id="reviewer")
    thread_id = thread["thread_id"]
    graph = await _run_to_review(client, settings, thread_id)
    snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})

    state = await sdk.threads.get_state(thread_id)
    messages = state["values"]["messages"]
    assert [(m["type"], m["content"]) for m in messages] == [
        ("human", "write it"),
        ("ai", "a first draft"),
    ]
    assert state["values"]["notes"] == ["drafted"]
    assert state["next"] == ["review"]
    assert state["checkpoint"]["thread_id"] == thread_id
    assert state["checkpoint"]["checkpoint_id"] == snapshot.config["configurable"]["checkpoint_id"]
    [asked] = state["interrupts"]
    assert asked["value"] == QUESTION and asked["id"] == snapshot.interrupts[0].id
    [task] = state["tasks"]
    assert task["name"] == "review" and task["interrupts"] == [asked]
    assert state["metadata"]["step"] == snapshot.metadata["step"]

    seen = await sdk.threads.get(thread_id)
    assert seen["status"] == "interrupted"
    assert seen["values"]["notes"] == ["drafted"]
    assert seen["interrupts"] == {task["id"]: [asked]}
    assert [t["thread_id"] for t in await sdk.threads.search(status="interrupted")] == [thread_id]

    # history: every checkpoint, newest first, as the graph lists them in process
    history = await sdk.threads.get_history(thread_id)
    expected = [
        s async for s in graph.aget_state_history({"configurable": {"thread_id": thread_id}})
    ]
    assert [h["checkpoint"]["checkpoint_id"] for h in history] == [
        s.config["configurable"]["checkpoint_id"] for s in expected
    ]
    assert [h["next"] for h in history] == [list(s.next) for s in expected]
    assert [h["next"] for h in history] == [["review"], ["draft"], ["__start__"]]
    assert [h["values"].get("notes") for h in history] == [["drafted"], None, None]
    assert history[0]["interrupts"] == [asked]
    assert len(await sdk.threads.get_history(thread_id, limit=1)) == 1
    older = await sdk.threads.get_history(thread_id, before=history[0]["checkpoint"])
    assert [h["next"] for h in older] == [["draft"], ["__start__"]]
    async with httpx.AsyncClient(base_url=server, headers={"x-api-key": KEYS["acme"]}) as http:
        plain = await http.get(f"/threads/{thread_id}/history", params={"limit": 2})
        assert [h["next"] for h in plain.json()] == [["review"], ["draft"]]

    # a past checkpoint's state, by id and by checkpoint
    past_id = history[1]["checkpoint"]["checkpoint_id"]
    past = await sdk.threads.get_state(thread_id, checkpoint_id=past_id)
    assert past["next"] == ["draft"]
    assert [m["content"] for m in past["values"]["messages"]] == ["write it"]
    assert await sdk.threads.get_state(thread_id, checkpoint=history[1]["checkpoint"]) == past

    # RemoteGraph reads the same state and history through the same routes
    remote = RemoteGraph("reviewer", url=server, api_key=KEYS["acme"])
    config = {"configurable": {"thread_id": thread_id}}
    remote_state = await remote.aget_state(config)
    assert remote_state.next == ("review",)
    assert remote_state.interrupts[0].value == QUESTION
    assert len([s async for s in remote.aget_state_history(config)]) == 3


async def test_the_latest_checkpoint_wins_over_an_older_recorded_state(
    client: GatewayClient, settings: RedisSettings, server: str
) -> None:
    sdk = get_client(url=server, api_key=KEYS["acme"])
    thread_id = (await sdk.threads.create(graph_id="reviewer"))["thread_id"]
    graph = await _run_to_review(client, settings, thread_id)
    # the run goes on without its state being recorded (its worker died, say)
    await graph.ainvoke(Command(resume="yes"), {"configurable": {"thread_id": thread_id}})
    state = await sdk.threads.get_state(thread_id)
    assert state["next"] == [] and state["interrupts"] == []
    assert state["values"]["notes"] == ["drafted", "reviewed: yes", "published"]
    # a garbled record is not trusted either: the checkpoint is read instead
    await client.redis.hset(f"{settings.keys.prefix}:lg:thread:{_tag(settings, thread_id)}",
                            "state", b'{"values": "forged", "checkpoint": 1}')  # fmt: skip
    again = await sdk.threads.get_state(thread_id)
    assert again["values"]["notes"] == ["drafted", "reviewed: yes", "published"]
    assert (await sdk.threads.get(thread_id))["status"] == "idle"


def _tag(settings: RedisSettings, thread_id: str) -> str:
    return f"{{{thread_id}}}" if settings.keys.schema == "v2" else thread_id


async def test_a_state_update_runs_on_a_worker_of_the_threads_graph(
    client: GatewayClient, settings: RedisSettings, server: str
) -> None:
    proc = spawn_worker("tests.agents.lg_state_graphs:reviewer", settings)
    try:
        await wait_online(client, "reviewer")
        sdk = get_client(url=server, api_key=KEYS["acme"])
        thread_id = (await sdk.threads.create(graph_id="reviewer"))["thread_id"]
        graph = await _run_to_review(client, settings, thread_id)
        before = (await sdk.threads.get_state(thread_id))["checkpoint"]["checkpoint_id"]

        updated = await sdk.threads.update_state(thread_id, {"notes": ["by hand"]})
        assert updated["checkpoint"]["thread_id"] == thread_id
        assert updated["checkpoint"]["checkpoint_id"] not in (None, before)
        state = await sdk.threads.get_state(thread_id)
        # the graph's reducer ran (appended): the update was the graph's, not a write
        assert state["values"]["notes"] == ["drafted", "by hand"]
        assert state["checkpoint"] == updated["checkpoint"]
        recorded = await client.redis.hget(
            f"{settings.keys.prefix}:lg:thread:{_tag(settings, thread_id)}", "state"
        )  # the worker recorded the new state, as a run's end does
        assert json.loads(recorded)["checkpoint"] == updated["checkpoint"]
        in_process = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        assert in_process.values["notes"] == ["drafted", "by hand"]

        # as if the review had answered: the graph goes on to publish
        await sdk.threads.update_state(thread_id, {"notes": ["approved"]}, as_node="review")
        state = await sdk.threads.get_state(thread_id)
        assert state["next"] == ["publish"] and state["interrupts"] == []
        assert state["values"]["notes"][-1] == "approved"

        with pytest.raises(BadRequestError) as refused:
            await sdk.threads.update_state(thread_id, {"notes": ["x"]}, as_node="no-such-node")
        assert "no-such-node" in str(refused.value.body)
        # the worker is still there to take the next one
        remote = RemoteGraph("reviewer", url=server, api_key=KEYS["acme"])
        config = await remote.aupdate_state({"configurable": {"thread_id": thread_id}},
                                            {"notes": ["remote"]})  # fmt: skip
        assert config["configurable"]["checkpoint_id"]
        assert (await sdk.threads.get_state(thread_id))["values"]["notes"][-1] == "remote"
        history = await sdk.threads.get_history(thread_id, limit=100)
        assert len(history) == 6  # 3 of the run, 3 updates
    finally:
        stop_process(proc)


async def test_a_thread_without_a_graph_cannot_be_updated(server: str) -> None:
    sdk = get_client(url=server, api_key=KEYS["acme"])
    thread_id = (await sdk.threads.create())["thread_id"]
    with pytest.raises(BadRequestError) as refused:
        await sdk.threads.update_state(thread_id, {"notes": ["x"]})
    assert "has no graph" in str(refused.value.body)
    empty = await sdk.threads.get_state(thread_id)
    assert empty["values"] == {} and empty["next"] == [] and empty["checkpoint"]["thread_id"]


async def test_a_copy_has_the_threads_checkpoints_under_its_own_id(
    client: GatewayClient, settings: RedisSettings, server: str
) -> None:
    sdk = get_client(url=server, api_key=KEYS["acme"])
    thread_id = (await sdk.threads.create(metadata={"graph_id": "reviewer", "k": 1}))["thread_id"]
    await _run_to_review(client, settings, thread_id)
    copy = await sdk.threads.copy(thread_id)
    assert copy["thread_id"] != thread_id and copy["metadata"] == {"graph_id": "reviewer", "k": 1}
    original = await sdk.threads.get_state(thread_id)
    copied = await sdk.threads.get_state(copy["thread_id"])
    assert copied["values"] == original["values"] and copied["next"] == ["review"]
    assert copied["checkpoint"]["thread_id"] == copy["thread_id"]
    assert len(await sdk.threads.get_history(copy["thread_id"])) == 3
    # the copy goes its own way: the original's checkpoints are untouched
    graph = _graph(client, settings)
    await graph.ainvoke(Command(resume="no"), {"configurable": {"thread_id": copy["thread_id"]}})
    assert (await sdk.threads.get_state(thread_id))["next"] == ["review"]


async def test_another_tenants_thread_is_not_found_on_any_route(
    client: GatewayClient, settings: RedisSettings, server: str
) -> None:
    acme = get_client(url=server, api_key=KEYS["acme"])
    globex = get_client(url=server, api_key=KEYS["globex"])
    thread_id = (await acme.threads.create(graph_id="reviewer", metadata={"x": 1}))["thread_id"]
    await _run_to_review(client, settings, thread_id)
    checkpoint = (await acme.threads.get_state(thread_id))["checkpoint"]
    attempts = [
        globex.threads.get(thread_id),
        globex.threads.update(thread_id, metadata={"x": 2}),
        globex.threads.delete(thread_id),
        globex.threads.get_state(thread_id),
        globex.threads.get_state(thread_id, checkpoint_id=checkpoint["checkpoint_id"]),
        globex.threads.get_state(thread_id, checkpoint=checkpoint),
        globex.threads.get_history(thread_id),
        globex.threads.update_state(thread_id, {"notes": ["theirs"]}),
        globex.threads.copy(thread_id),
        globex.threads.create(thread_id=thread_id),
        globex.threads.create(thread_id=thread_id, if_exists="do_nothing"),
    ]
    for attempt in attempts:
        with pytest.raises(NotFoundError) as refused:
            await attempt
        assert refused.value.response.json()["field"] == "thread_id"
    assert await globex.threads.search() == []
    assert await globex.threads.count() == 0
    # untouched, and still the owner's
    seen = await acme.threads.get(thread_id)
    assert seen["metadata"] == {"x": 1, "graph_id": "reviewer"}
    assert (await acme.threads.get_state(thread_id))["values"]["notes"] == ["drafted"]
    async with httpx.AsyncClient(base_url=server) as anonymous:
        for method, path in (("GET", f"/threads/{thread_id}"), ("POST", "/threads/search"),
                             ("GET", f"/threads/{thread_id}/state"),
                             ("POST", f"/threads/{thread_id}/history")):  # fmt: skip
            response = await anonymous.request(method, path, json={} if method == "POST" else None)
            assert response.status_code == 401, path


async def test_a_subgraphs_state_is_nested_when_asked_for(
    client: GatewayClient, settings: RedisSettings, server: str
) -> None:
    sdk = get_client(url=server, api_key=KEYS["acme"])
    thread_id = (await sdk.threads.create())["thread_id"]
    saver = RedisCheckpointSaver(client.redis, namespace=settings.namespace)
    graph = nested_graph.copy(update={"checkpointer": saver})
    config = {"configurable": {"thread_id": thread_id}}
    await graph.ainvoke({"messages": [HumanMessage(content="hi")]}, config)
    await record_thread_state(client.redis, settings.keys, thread_id, graph, config)

    flat = await sdk.threads.get_state(thread_id)
    [task] = flat["tasks"]
    assert task["name"] == "outer" and task["state"] is None
    assert task["checkpoint"]["checkpoint_ns"].startswith("outer:")
    assert task["interrupts"][0]["value"] == {"question": "inside?"}
    nested = await sdk.threads.get_state(thread_id, subgraphs=True)
    inner = nested["tasks"][0]["state"]
    assert (
        inner["next"] == ["ask"]
        and inner["checkpoint"]["checkpoint_ns"] == (task["checkpoint"]["checkpoint_ns"])
    )
    # the subgraph's own history, by its checkpoint namespace
    inner_history = await sdk.threads.get_history(thread_id, checkpoint=task["checkpoint"])
    assert [h["next"] for h in inner_history] == [["ask"], ["__start__"]]


async def test_a_state_too_large_to_record_is_read_from_its_checkpoint(
    client: GatewayClient,
    settings: RedisSettings,
    server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("byway_langgraph._thread_state.MAX_STATE_BYTES", 200)
    sdk = get_client(url=server, api_key=KEYS["acme"])
    thread_id = (await sdk.threads.create(graph_id="reviewer"))["thread_id"]
    await _run_to_review(client, settings, thread_id)
    recorded = await client.redis.hget(
        f"{settings.keys.prefix}:lg:thread:{_tag(settings, thread_id)}", "state"
    )
    assert b'"values":null' in recorded  # recorded without them
    state = await sdk.threads.get_state(thread_id)
    assert state["values"]["notes"] == ["drafted"] and state["next"] == ["review"]
    assert (await sdk.threads.get(thread_id))["values"]["notes"] == ["drafted"]


async def test_an_update_does_not_wait_behind_a_run_that_waits_for_its_answer(
    client: GatewayClient, settings: RedisSettings, server: str
) -> None:
    proc = spawn_worker("tests.agents.lg_state_graphs:reviewer", settings)
    try:
        await wait_online(client, "reviewer")
        sdk = get_client(url=server, api_key=KEYS["acme"])
        thread_id = (await sdk.threads.create(graph_id="reviewer"))["thread_id"]
        await _run_to_review(client, settings, thread_id)
        # a run of the session waits for a person (it holds the session until answered)
        sent = await client.send_message("reviewer", thread_id, "another draft")
        await until_status(client, thread_id, sent.message_id, "WAITING_USER")
        assert (await sdk.threads.get(thread_id))["status"] == "interrupted"
        await sdk.threads.update_state(thread_id, {"notes": ["meanwhile"]})
        assert (await sdk.threads.get_state(thread_id))["values"]["notes"][-1] == "meanwhile"
        # the update was not a run: the thread still waits for that answer
        assert (await sdk.threads.get(thread_id))["status"] == "interrupted"
    finally:
        stop_process(proc)


async def test_bad_input_is_refused_naming_the_field(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, headers={"x-api-key": KEYS["acme"]}) as http:
        thread_id = (await http.post("/threads", json={})).json()["thread_id"]
        cases = [
            ("POST", "/threads", {"thread_id": "a{b}"}, "thread_id"),
            ("POST", "/threads", {"thread_id": "x" * 300}, "thread_id"),
            ("POST", "/threads", {"metadata": "not an object"}, "body.metadata"),
            ("POST", "/threads", {"if_exists": "overwrite"}, "body.if_exists"),
            ("POST", "/threads", {"ttl": {"ttl": 0.5}}, "ttl"),
            ("POST", "/threads/search", {"limit": 100000}, "body.limit"),
            ("POST", "/threads/search", {"select": ["password"]}, "select"),
            ("POST", "/threads/search", {"status": "sleeping"}, "body.status"),
            ("GET", "/threads/a{b}", None, "thread_id"),
            ("GET", f"/threads/{thread_id}/state/not{{an}}id", None, "checkpoint_id"),
            ("POST", f"/threads/{thread_id}/history", {"limit": 0}, "body.limit"),
            ("POST", f"/threads/{thread_id}/state", {"as_node": 7}, "body.as_node"),
            ("POST", f"/threads/{thread_id}/state/checkpoint", {}, "body.checkpoint"),
        ]
        for method, path, body, field in cases:
            response = await http.request(method, path, json=body)
            assert response.status_code == 422, (path, body, response.text)
            assert response.json()["field"] == field, (path, body, response.json())
        deep: dict[str, object] = {}
        for _ in range(200):
            deep = {"a": deep}
        response = await http.post("/threads/search", json={"metadata": deep})
        assert response.status_code == 422 and response.json()["field"] == "body"
        missing = await http.get("/threads/no-such-thread/state")
        assert missing.status_code == 404 and missing.json()["field"] == "thread_id"
