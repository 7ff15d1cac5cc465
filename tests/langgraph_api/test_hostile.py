"""Requests a careless or hostile client sends to the LangGraph Server API: each is
refused with a JSON error naming the field, before anything is stored or run, and
leaves nothing behind that breaks the tenant's later requests."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.langgraph_api._runs_stack import HI, KEY_B, Stack, new_thread, stack

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def served(redis_url: str) -> Iterator[Stack]:
    with stack(redis_url, workers=1) as s:
        yield s


def _deep(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


async def test_a_thread_id_cannot_name_a_native_sessions_checkpoints(served: Stack) -> None:
    """A native session S keeps its graph's checkpoints under 'S:agent': a LangGraph thread
    of that name (another tenant's) would read and write them. Thread ids hold no ':'."""
    async with served.http() as a, served.http(KEY_B) as b:
        sent = await a.post(
            "/v1/messages", json={"agent_type": "agent", "content": "my secret is swordfish"}
        )
        assert sent.status_code == 202, sent.text
        session = sent.json()["session_id"]
        for attempt in (
            b.post("/threads", json={"thread_id": f"{session}:agent"}),
            b.post(
                f"/threads/{session}:agent/runs/wait",
                json={"assistant_id": "agent", "input": HI, "if_not_exists": "create"},
            ),
        ):
            refused = await attempt
            assert refused.status_code == 422, refused.text
            assert refused.json()["field"] == "thread_id"
        history = await b.post(f"/threads/{session}:agent/history", json={})
        assert history.status_code == 422
        assert "swordfish" not in history.text


async def test_too_deep_metadata_is_refused_and_search_keeps_working(served: Stack) -> None:
    async with served.http() as a:
        refused = await a.post("/threads", json={"metadata": _deep(900)})
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "body"
        far_too_deep = "[" * 100_000 + "]" * 100_000
        refused = await a.post(
            "/threads", content=far_too_deep, headers={"content-type": "application/json"}
        )
        assert refused.status_code == 422, refused.text
        made = await a.post("/threads", json={"metadata": {"case": "deep"}})
        assert made.status_code == 200
        found = await a.post("/threads/search", json={"metadata": {"case": "deep"}})
        assert found.status_code == 200, found.text
        assert [t["thread_id"] for t in found.json()] == [made.json()["thread_id"]]


async def test_a_refused_run_leaves_no_pending_run(served: Stack) -> None:
    thread = new_thread()
    async with served.http() as a:
        assert (await a.post("/threads", json={"thread_id": thread})).status_code == 200
        refused = await a.post(
            f"/threads/{thread}/runs/wait",
            json={"assistant_id": "agent", "input": {"messages": [], "x": _deep(60)}},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "body"
        runs = await a.get(f"/threads/{thread}/runs")
        assert runs.status_code == 200 and runs.json() == []


async def test_a_thread_id_outside_ascii_streams_with_quoted_locations(served: Stack) -> None:
    thread = "ü-é-😀 ?#"
    async with served.http() as a:
        made = await a.post("/threads", json={"thread_id": thread})
        assert made.status_code == 200, made.text
        body = {"assistant_id": "agent", "input": HI, "stream_mode": "values"}
        path = quote(made.json()["thread_id"], safe="")
        async with a.stream("POST", f"/threads/{path}/runs/stream", json=body) as response:
            assert response.status_code == 200
            text = "".join([chunk async for chunk in response.aiter_text()])
            location = response.headers["content-location"]
        assert location.startswith("/threads/%C3%BC-%C3%A9-%F0%9F%98%80%20%3F%23/runs/")
        assert "event: values" in text
        (run,) = (await a.get(f"/threads/{path}/runs")).json()
        assert run["status"] == "success"


@pytest.mark.parametrize("ttl", ["nan", "inf", 1e308])
async def test_a_ttl_that_is_no_number_of_minutes_is_refused(served: Stack, ttl: object) -> None:
    async with served.http() as a:
        refused = await a.post("/threads", json={"ttl": ttl})
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "ttl"


async def test_an_event_id_past_64_bits_is_refused(served: Stack) -> None:
    async with served.http() as a:
        sent = await a.post("/v1/messages", json={"agent_type": "agent", "content": "hi"})
        session = sent.json()["session_id"]
        huge = "99999999999999999999-99999999999999999999"
        refused = await a.get(f"/v1/sessions/{session}/events", headers={"Last-Event-ID": huge})
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "Last-Event-ID"
