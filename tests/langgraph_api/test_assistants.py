"""The LangGraph Server API's assistants on ``byway serve``, through the official
``langgraph-sdk`` client and ``RemoteGraph``: a graph a worker process serves is an
assistant (with its schemas and drawing) while a worker of it is online, and only then."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from byway import GatewayClient, RedisSettings
from tests.conftest import spawn_server, spawn_worker, stop_process, wait_online

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

KEY = "acme-key-0123456789"
#: the assistant id LangGraph Server gives the graph "reviewer" (uuid5 of its id)
REVIEWER_ID = str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "reviewer"))


@pytest.fixture
def server(settings: RedisSettings, redis: object) -> Iterator[str]:
    proc, url = spawn_server(settings, env={"BYWAY_SERVER_API_KEYS": f"acme={KEY}"})
    yield url
    stop_process(proc)


async def served(sdk: LangGraphClient, count: int = 1, timeout: float = 60) -> list[Any]:
    """The assistants once there are ``count`` (a worker records its graph right after
    it joins, so it can be online a moment before its assistant is listed)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await sdk.assistants.search()
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_a_served_graph_is_an_assistant_while_its_worker_is_online(
    client: GatewayClient, settings: RedisSettings, server: str
) -> None:
    sdk = get_client(url=server, api_key=KEY)
    assert await sdk.assistants.search() == []  # nothing served yet
    proc = spawn_worker("tests.agents.lg_state_graphs:reviewer", settings)
    try:
        await wait_online(client, "reviewer")
        found = await served(sdk)
        assert [a["graph_id"] for a in found] == ["reviewer"]
        [assistant] = found
        assert assistant["assistant_id"] == REVIEWER_ID
        assert assistant["name"] == "reviewer"
        assert assistant["metadata"] == {"created_by": "system"}
        assert assistant["version"] == 1
        assert assistant["config"] == {} and assistant["created_at"]
        assert await sdk.assistants.get(REVIEWER_ID) == assistant
        assert await sdk.assistants.get("reviewer") == assistant  # by graph id too
        assert await sdk.assistants.count() == 1
        assert await sdk.assistants.count(graph_id="reviewer") == 1
        assert await sdk.assistants.search(graph_id="someone-else") == []
        assert await sdk.assistants.search(metadata={"created_by": "system"}) == [assistant]
        assert await sdk.assistants.search(metadata={"created_by": "a user"}) == []
        assert await sdk.assistants.search(select=["graph_id"]) == [{"graph_id": "reviewer"}]

        drawn = await sdk.assistants.get_graph(REVIEWER_ID)
        assert {n["id"] for n in drawn["nodes"]} == {
            "__start__", "draft", "review", "publish", "__end__",
        }  # fmt: skip
        assert {(e["source"], e["target"]) for e in drawn["edges"]} == {
            ("__start__", "draft"), ("draft", "review"), ("review", "publish"),
            ("publish", "__end__"),
        }  # fmt: skip
        assert (await sdk.assistants.get_graph(REVIEWER_ID, xray=True))["nodes"]

        schemas = await sdk.assistants.get_schemas("reviewer")
        assert schemas["graph_id"] == "reviewer"
        assert set(schemas["state_schema"]["properties"]) == {"messages", "notes"}
        assert "messages" in schemas["input_schema"]["properties"]
        assert "notes" in schemas["output_schema"]["properties"]
        assert schemas["context_schema"]["properties"]["audience"]["default"] == "everyone"
        assert await sdk.assistants.get_subgraphs("reviewer") == {}

        remote = RemoteGraph("reviewer", url=server, api_key=KEY)
        graph = await remote.aget_graph()
        assert set(graph.nodes) == {"__start__", "draft", "review", "publish", "__end__"}
    finally:
        assert stop_process(proc) == 0
    # its only worker is gone (it released its lease): no longer an assistant
    assert await sdk.assistants.search() == []
    assert await sdk.assistants.count() == 0
    with pytest.raises(NotFoundError):
        await sdk.assistants.get(REVIEWER_ID)


async def test_unknown_assistants_are_404_naming_the_id_and_a_key_is_needed(
    server: str,
) -> None:
    async with httpx.AsyncClient(base_url=server, headers={"x-api-key": KEY}) as http:
        missing = await http.get("/assistants/no-such-graph")
        assert missing.status_code == 404
        assert missing.json()["field"] == "assistant_id"
        assert "no-such-graph" in missing.json()["error"]
        for path in ("/graph", "/schemas", "/subgraphs"):
            assert (await http.get(f"/assistants/{REVIEWER_ID}{path}")).status_code == 404
        bad = await http.post("/assistants/search", json={"limit": 0})
        assert bad.status_code == 422 and bad.json()["field"] == "body.limit"
        built_not = await http.post("/assistants", json={"graph_id": "reviewer"})
        assert built_not.status_code == 501 and "not built" in built_not.json()["error"]
    async with httpx.AsyncClient(base_url=server) as anonymous:
        assert (await anonymous.post("/assistants/search", json={})).status_code == 401
        assert (await anonymous.get(f"/assistants/{REVIEWER_ID}")).status_code == 401
        # what the server is, and that it is up: no key needed, as under LangGraph Server
        info = await anonymous.get("/info")
        assert info.status_code == 200
        assert info.json()["flags"]["assistants"] is True
        assert info.json()["flags"]["crons"] is False
        assert (await anonymous.get("/ok")).json() == {"ok": True}


async def test_a_garbled_or_forged_graph_record_is_skipped(
    client: GatewayClient, settings: RedisSettings, server: str
) -> None:
    proc = spawn_worker("tests.agents.lg_state_graphs:reviewer", settings)
    try:
        await wait_online(client, "reviewer")
        sdk = get_client(url=server, api_key=KEY)
        assert len(await served(sdk)) == 1
        key = f"{settings.keys.prefix}:lg:assistants"
        for junk in (b"\xff not json", b'{"graph_id": "someone-else"}', b'{"graph_id": 7}'):
            await client.redis.hset(key, "reviewer", junk)
            assert await sdk.assistants.search() == []
            with pytest.raises(NotFoundError):
                await sdk.assistants.get_schemas("reviewer")
        # a record for a graph no worker serves is not an assistant either
        await client.redis.hset(key, "ghost", b'{"graph_id": "ghost"}')
        assert await sdk.assistants.count() == 0
    finally:
        stop_process(proc)
