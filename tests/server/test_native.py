"""The native API over HTTP: real ``byway serve`` processes, real worker processes, the
frames as an SSE client reads them."""

from __future__ import annotations

import signal
import uuid

import httpx

from byway import GatewayClient
from tests.agents.server_agents import tokens
from tests.conftest import wait_online
from tests.server.conftest import ACME, Frame, frames, is_end


def deltas(got: list[Frame]) -> list[str]:
    return [f.content for f in got if f.event == "answerDelta"]


async def send(
    http: httpx.AsyncClient, url: str, session: str | None, agent_type: str, content: str, **more
) -> dict:
    path = f"/v1/sessions/{session}/messages" if session else "/v1/messages"
    r = await http.post(
        url + path, headers=ACME, json={"agent_type": agent_type, "content": content, **more}
    )
    assert r.status_code == 202, r.text
    return r.json()


async def test_send_then_the_events_to_the_final_answer(
    serve, workers, http: httpx.AsyncClient, client: GatewayClient
) -> None:
    workers("streamer")
    _, url = serve()
    await wait_online(client, "streamer")
    session = f"s-{uuid.uuid4().hex}"
    # the tenant in the command is the server's, whatever the metadata claimed
    sent = await send(http, url, session, "streamer", "4", metadata={"tenant": "globex"})
    assert sent["session_id"] == session
    assert sent["status"] == "QUEUED"
    assert sent["stream_token"]
    got = await frames(http, url + sent["events_url"], headers=ACME)

    assert deltas(got) == tokens(4)
    final = [f for f in got if f.event == "finalAnswer"]
    assert [f.content for f in final] == ["".join(tokens(4))]
    assert final[0].json["data"]["reply_data"] == {"user_code": "acme", "tenant": "acme"}
    assert is_end(got[-1]) and got[-1].json["message_id"] == sent["message_id"]
    # id: is the Redis entry id of each event, in order
    entries = await client.redis.xrange(client.keys.session_stream(session))
    assert [f.id for f in got] == [e[0].decode() for e in entries]
    assert all(f.json["event_type"] == f.event for f in got)

    # a new session when none is named
    fresh = await send(http, url, None, "streamer", "1")
    assert fresh["session_id"] != session
    uuid.UUID(fresh["session_id"])
    got = await frames(http, url + fresh["events_url"], headers=ACME)
    assert deltas(got) == tokens(1)


async def test_last_event_id_continues_on_a_second_replica(
    serve, workers, http: httpx.AsyncClient, client: GatewayClient
) -> None:
    """Replica A dies mid-stream (SIGKILL); B continues after the last frame the client
    saw, with exactly the frames it had not."""
    workers("streamer")
    a, url_a = serve()
    _, url_b = serve()
    await wait_online(client, "streamer")
    sent = await send(http, url_a, None, "streamer", "12:0.1")
    session = sent["session_id"]
    first = await frames(
        http,
        url_a + sent["events_url"],
        headers=ACME,
        until=lambda f: f.event == "answerDelta" and f.content == "t2 ",
    )
    a.send_signal(signal.SIGKILL)
    a.wait()
    # the browser's way: no key, the stream token A issued, Last-Event-ID
    rest = await frames(
        http,
        url_b + sent["events_url"],
        headers={"Last-Event-ID": first[-1].id},
        params={"stream_token": sent["stream_token"]},
    )
    assert deltas(first) + deltas(rest) == tokens(12)
    assert is_end(rest[-1])
    entries = await client.redis.xrange(client.keys.session_stream(session))
    ids = [e[0].decode() for e in entries]
    assert [f.id for f in first] == ids[: len(first)]
    assert [f.id for f in rest] == ids[len(first) :]

    # ?after= does the same as the header
    again = await frames(
        http, url_b + sent["events_url"], headers=ACME, params={"after": first[-1].id}
    )
    assert [(f.id, f.event, f.data) for f in again] == [(f.id, f.event, f.data) for f in rest]


async def test_until_message_id_ends_the_stream_at_that_message(
    serve, workers, http: httpx.AsyncClient, client: GatewayClient
) -> None:
    workers("streamer")
    _, url = serve()
    await wait_online(client, "streamer")
    session = f"s-{uuid.uuid4().hex}"
    one = await send(http, url, session, "streamer", "3:0.1")
    two = await send(http, url, session, "streamer", "3:0.1")  # queued behind the first
    assert two["disposition"] == "queued"
    got = await frames(http, url + one["events_url"], headers=ACME)
    assert deltas(got) == tokens(3)
    assert is_end(got[-1]) and got[-1].json["message_id"] == one["message_id"]
    assert {f.json["message_id"] for f in got} == {one["message_id"]}

    # the second's stream, from the start, passes the first message and ends at its own
    second = await frames(http, url + two["events_url"], headers=ACME, params={"after": "0"})
    assert deltas(second) == tokens(3) * 2
    assert second[-1].json["message_id"] == two["message_id"] and is_end(second[-1])

    # a reconnect after the end it waited for: 204, so an EventSource stops reconnecting
    r = await http.get(url + one["events_url"], headers={**ACME, "Last-Event-ID": got[-1].id})
    assert r.status_code == 204

    # stop_at_end: after the first end that follows
    ended = await frames(
        http,
        f"{url}/v1/sessions/{session}/events",
        headers=ACME,
        params={"stop_at_end": "true", "after": got[0].id},
    )
    assert ended[-1].id == got[-1].id


async def test_an_idle_stream_gets_heartbeats(
    serve, workers, http: httpx.AsyncClient, client: GatewayClient
) -> None:
    workers("streamer")
    _, url = serve(env={"BYWAY_SERVER_HEARTBEAT_SECONDS": "0.2"})
    await wait_online(client, "streamer")
    sent = await send(http, url, None, "streamer", "1")
    await frames(http, url + sent["events_url"], headers=ACME)
    seen: list[str] = []
    got = await frames(
        http,
        f"{url}/v1/sessions/{sent['session_id']}/events",
        headers=ACME,
        params={"after": "$"},
        comments=seen,
        until=lambda f: seen.count("heartbeat") >= 3,
    )
    assert got == [] and seen.count("heartbeat") >= 3


async def test_resume_answers_the_question(
    serve, workers, http: httpx.AsyncClient, client: GatewayClient
) -> None:
    workers("questioner")
    _, url = serve()
    await wait_online(client, "questioner")
    sent = await send(http, url, None, "questioner", "the deploy")
    session, mid = sent["session_id"], sent["message_id"]
    asked = await frames(
        http, url + sent["events_url"], headers=ACME, until=lambda f: f.event == "taskStop"
    )
    question = asked[-1].json["data"]
    assert question["kind"] == "ask_user" and question["prompt"] == "what about the deploy?"

    r = await http.post(
        f"{url}/v1/sessions/{session}/messages/{mid}/resume", headers=ACME, json={"answer": "yes"}
    )
    assert r.status_code == 202, r.text
    assert r.json()["message_id"] == mid
    rest = await frames(
        http, url + sent["events_url"], headers={**ACME, "Last-Event-ID": asked[-1].id}
    )
    assert [f.content for f in rest if f.event == "finalAnswer"] == ["you said: yes"]
    assert is_end(rest[-1])

    # answered: a second answer is refused, saying why
    r = await http.post(
        f"{url}/v1/sessions/{session}/messages/{mid}/resume", headers=ACME, json={"answer": "no"}
    )
    assert r.status_code == 409
    body = r.json()
    assert body["field"] == "message_id" and body["execution"] == "COMPLETED"
    assert body["code"] == "RESUME_REFUSED" and body["error"]
    r = await http.post(
        f"{url}/v1/sessions/{session}/messages/msg-nope/resume", headers=ACME, json={"answer": 1}
    )
    assert r.status_code == 404 and r.json()["field"] == "message_id"


async def test_cancel_stops_a_task_and_a_session(
    serve, workers, http: httpx.AsyncClient, client: GatewayClient
) -> None:
    workers("streamer")
    _, url = serve()
    await wait_online(client, "streamer")
    sent = await send(http, url, None, "streamer", "600:0.05")
    session, mid = sent["session_id"], sent["message_id"]
    started = await frames(
        http, url + sent["events_url"], headers=ACME, until=lambda f: f.event == "answerDelta"
    )
    r = await http.post(
        f"{url}/v1/sessions/{session}/messages/{mid}/cancel",
        headers=ACME,
        json={"mode": "graceful", "reason": "enough"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "session_id": session,
        "message_id": mid,
        "status": "CANCEL_REQUESTED",
        "message_ids": [mid],
    }
    rest = await frames(
        http, url + sent["events_url"], headers={**ACME, "Last-Event-ID": started[-1].id}
    )
    assert rest[-1].json["data"]["status"] == "CANCELLED"
    assert len(deltas(started + rest)) < 600
    record = (await http.get(f"{url}/v1/sessions/{session}/messages/{mid}", headers=ACME)).json()
    assert record["status"] == "CANCELLED"
    r = await http.post(f"{url}/v1/sessions/{session}/messages/{mid}/cancel", headers=ACME)
    assert r.status_code == 200 and r.json()["status"] == "ALREADY_FINISHED"

    # a whole session, by force, with no body at all
    other = await send(http, url, session, "streamer", "600:0.05")
    await frames(
        http,
        url + other["events_url"],
        headers={**ACME, "Last-Event-ID": rest[-1].id},
        until=lambda f: f.event == "answerDelta",
    )
    r = await http.post(f"{url}/v1/sessions/{session}/cancel", headers=ACME, json={"mode": "force"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "CANCEL_REQUESTED"
    assert r.json()["message_ids"] == [other["message_id"]]
    tail = await frames(
        http, url + other["events_url"], headers={**ACME, "Last-Event-ID": rest[-1].id}
    )
    assert tail[-1].json["data"]["status"] == "CANCELLED"
    r = await http.post(f"{url}/v1/sessions/{session}/cancel", headers=ACME)
    assert r.status_code == 200 and r.json()["status"] == "ALREADY_FINISHED"
    r = await http.post(f"{url}/v1/sessions/{session}/messages/msg-nope/cancel", headers=ACME)
    assert r.status_code == 404 and r.json()["field"] == "message_id"


async def test_an_execution_and_the_call_tree(
    serve, workers, http: httpx.AsyncClient, client: GatewayClient
) -> None:
    workers("delegator")
    workers("streamer")
    _, url = serve()
    await wait_online(client, "delegator")
    await wait_online(client, "streamer")
    sent = await send(http, url, None, "delegator", "2")
    session, mid = sent["session_id"], sent["message_id"]
    got = await frames(http, url + sent["events_url"], headers=ACME)
    assert [f.content for f in got if f.event == "finalAnswer"] == [
        "streamer said: " + "".join(tokens(2))
    ]

    r = await http.get(f"{url}/v1/sessions/{session}/messages/{mid}", headers=ACME)
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["message_id"] == mid and record["session_id"] == session
    assert record["agent_type"] == "delegator" and record["status"] == "COMPLETED"
    assert record["result"]["status"] == "COMPLETED"
    states = [s["status"] for s in record["timeline"]]
    assert states[0] == "QUEUED" and "WAITING_AGENT" in states and states[-1] == "COMPLETED"

    r = await http.get(f"{url}/v1/sessions/{session}/executions", headers=ACME)
    assert r.status_code == 200, r.text
    listing = r.json()
    assert [e["agent_type"] for e in listing["executions"]] == ["delegator", "streamer"]
    child = listing["executions"][1]
    assert child["parent_message_id"] == mid and child["status"] == "COMPLETED"
    [root] = listing["tree"]
    assert (root["message_id"], root["agent_type"], root["status"]) == (
        mid,
        "delegator",
        "COMPLETED",
    )
    assert [(c["message_id"], c["agent_type"], c["children"]) for c in root["children"]] == [
        (child["message_id"], "streamer", [])
    ]

    # a task another task started has no end event to wait for
    r = await http.get(
        f"{url}/v1/sessions/{session}/events",
        headers=ACME,
        params={"until_message_id": child["message_id"]},
    )
    assert r.status_code == 422 and r.json()["field"] == "until_message_id"
    r = await http.get(f"{url}/v1/sessions/{session}/messages/msg-nope", headers=ACME)
    assert r.status_code == 404 and r.json()["field"] == "message_id"


async def test_refusals_name_the_agent_type_and_the_busy_session(
    serve, workers, http: httpx.AsyncClient, client: GatewayClient
) -> None:
    _, url = serve()
    r = await http.post(
        f"{url}/v1/messages", headers=ACME, json={"agent_type": "streamer", "content": "1"}
    )
    assert r.status_code == 503
    body = r.json()
    assert body["field"] == "agent_type" and "'streamer'" in body["error"]
    assert body["code"] == "AGENT_TYPE_UNAVAILABLE"
    # queued for a worker that starts later
    queued = await send(http, url, None, "streamer", "40:0.05", require_online_worker=False)
    workers("streamer")
    await frames(
        http, url + queued["events_url"], headers=ACME, until=lambda f: f.event == "answerDelta"
    )
    r = await http.post(
        f"{url}/v1/sessions/{queued['session_id']}/messages",
        headers=ACME,
        json={"agent_type": "streamer", "content": "1", "multitask_strategy": "reject"},
    )
    assert r.status_code == 409
    body = r.json()
    assert body["code"] == "SESSION_BUSY" and body["field"] == "session_id"
    assert queued["message_id"] in body["error"]
