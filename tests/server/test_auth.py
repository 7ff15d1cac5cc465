"""Keys, tenants, stream tokens and limits, over HTTP against real ``byway serve``
processes."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import httpx

from byway import GatewayClient, RedisSettings
from byway.app import worker_env
from tests.agents.server_agents import tokens
from tests.conftest import ROOT, free_port, wait_online
from tests.server.conftest import (
    ACME,
    ACME_KEY,
    GLOBEX,
    PATIENCE,
    frames,
    is_end,
)

APP = "http://app.example"


async def test_keys_tenants_and_stream_tokens(
    serve, workers, http: httpx.AsyncClient, client: GatewayClient
) -> None:
    workers("questioner")
    _, url = serve()
    await wait_online(client, "questioner")
    r = await http.post(
        f"{url}/v1/messages", headers=ACME, json={"agent_type": "questioner", "content": "it"}
    )
    assert r.status_code == 202, r.text
    sent = r.json()
    session, mid, token = sent["session_id"], sent["message_id"], sent["stream_token"]
    asked = await frames(
        http, url + sent["events_url"], headers=ACME, until=lambda f: f.event == "taskStop"
    )
    base = f"{url}/v1/sessions/{session}"
    body = {"agent_type": "questioner", "content": "x"}

    # no key, a wrong key: 401, naming the header
    for headers in ({}, {"X-Api-Key": "k-nobody-0123456789abcdef"}):
        for method, path, payload in (
            ("POST", f"{url}/v1/messages", body),
            ("GET", f"{base}/events", None),
            ("GET", f"{base}/executions", None),
        ):
            r = await http.request(method, path, headers=headers, json=payload)
            assert r.status_code == 401, (headers, path, r.text)
            assert r.json()["field"] == "x-api-key"
            assert r.headers["www-authenticate"] == "Bearer"
    # Bearer works as X-Api-Key does
    r = await http.get(f"{base}/executions", headers={"Authorization": f"Bearer {ACME_KEY}"})
    assert r.status_code == 200 and r.json()["executions"][0]["user_code"] == "acme"

    # another tenant: the session does not exist for it, whatever it tries
    for method, path, payload in (
        ("GET", f"{base}/events", None),
        ("GET", f"{base}/executions", None),
        ("GET", f"{base}/messages/{mid}", None),
        ("POST", f"{base}/messages/{mid}/resume", {"answer": "hijacked"}),
        ("POST", f"{base}/messages/{mid}/cancel", {"mode": "force"}),
        ("POST", f"{base}/cancel", None),
        ("POST", f"{base}/messages", body),
    ):
        r = await http.request(method, path, headers=GLOBEX, json=payload)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["field"] == "session_id"
    record = (await http.get(f"{base}/messages/{mid}", headers=ACME)).json()
    assert record["status"] == "WAITING_USER"  # untouched by globex

    # the stream token reads this session's events, without a key
    got = await frames(
        http,
        f"{base}/events",
        params={"stream_token": token, "until_message_id": mid},
        until=lambda f: f.event == "taskStop",
    )
    assert [f.id for f in got] == [f.id for f in asked]
    # ... and nothing else: another session of the same tenant (403), any other route,
    # any write
    r = await http.post(f"{url}/v1/messages", headers=ACME, json=body)
    other = r.json()["session_id"]
    r = await http.get(f"{url}/v1/sessions/{other}/events", params={"stream_token": token})
    assert r.status_code == 403 and r.json()["field"] == "stream_token"
    for method, path, payload in (
        ("GET", f"{base}/executions", None),
        ("GET", f"{base}/messages/{mid}", None),
        ("POST", f"{base}/messages/{mid}/resume", {"answer": "x"}),
        ("POST", f"{base}/cancel", None),
    ):
        r = await http.request(method, path, params={"stream_token": token}, json=payload)
        assert r.status_code == 401 and r.json()["field"] == "stream_token", (path, r.text)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    r = await http.get(f"{base}/events", params={"stream_token": forged})
    assert r.status_code == 401 and r.json()["field"] == "stream_token"

    # the owner still answers and reads to the end; the other tenant's own sessions work
    r = await http.post(f"{base}/messages/{mid}/resume", headers=ACME, json={"answer": "ok"})
    assert r.status_code == 202
    rest = await frames(http, url + sent["events_url"], headers=ACME)
    assert is_end(rest[-1]) and rest[-1].json["data"]["status"] == "COMPLETED"
    r = await http.post(f"{url}/v1/messages", headers=GLOBEX, json=body)
    assert r.status_code == 202


async def test_a_session_written_outside_the_server_is_no_tenants(
    serve, workers, http: httpx.AsyncClient, client: GatewayClient
) -> None:
    """A backend's own session (sent with the Python client, no tenant): no key reaches
    it, and no key can claim it by sending to it."""
    workers("streamer")
    _, url = serve()
    await wait_online(client, "streamer")
    session = f"backend-{uuid.uuid4().hex}"
    sent = await client.send_message("streamer", session, "1")
    await client.wait_for_final(session, sent.message_id, timeout=PATIENCE)
    for method, path in (
        ("GET", f"/v1/sessions/{session}/executions"),
        ("POST", f"/v1/sessions/{session}/messages"),
    ):
        payload = {"agent_type": "streamer", "content": "1"} if method == "POST" else None
        r = await http.request(method, url + path, headers=ACME, json=payload)
        assert r.status_code == 404, r.text


async def test_bodies_over_the_limit_are_413(serve, http: httpx.AsyncClient) -> None:
    _, url = serve(env={"BYWAY_SERVER_MAX_BODY_BYTES": "2000"})
    small = {"agent_type": "nobody", "content": "hi", "require_online_worker": False}
    r = await http.post(f"{url}/v1/messages", headers=ACME, json=small)
    assert r.status_code == 202, r.text
    big = {**small, "content": "x" * 5000}
    r = await http.post(f"{url}/v1/messages", headers=ACME, json=big)
    assert r.status_code == 413
    assert r.json()["field"] == "body" and "2000" in r.json()["error"]

    # no Content-Length (chunked): refused the same way
    async def chunked(payload: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 500):
            yield payload[i : i + 500]

    headers = {**ACME, "Content-Type": "application/json"}
    r = await http.post(
        f"{url}/v1/messages", headers=headers, content=chunked(httpx.Request(
            "POST", url, json=big).content)
    )  # fmt: skip
    assert "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert r.json()["field"] == "body"
    r = await http.post(
        f"{url}/v1/messages", headers=headers, content=chunked(httpx.Request(
            "POST", url, json=small).content)
    )  # fmt: skip
    assert r.status_code == 202, r.text


async def test_bad_input_is_422_naming_the_field(serve, http: httpx.AsyncClient) -> None:
    _, url = serve()
    # what the models below say, published
    api = (await http.get(f"{url}/openapi.json")).json()
    for path in ("/v1/messages", "/v1/sessions/{session_id}/events",
                 "/v1/sessions/{session_id}/messages/{message_id}/resume",
                 "/v1/sessions/{session_id}/executions", "/readyz"):  # fmt: skip
        assert path in api["paths"], path
    send = api["components"]["schemas"]["SendRequest"]
    assert send["required"] == ["agent_type", "content"]
    assert set(send["properties"]["multitask_strategy"]["anyOf"][0]["enum"]) == {
        "enqueue", "reject", "interrupt"
    }  # fmt: skip
    assert {"APIKeyHeader", "HTTPBearer"} <= set(api["components"]["securitySchemes"])
    assert "swagger" in (await http.get(f"{url}/docs")).text.lower()
    cases = [
        ({"content": "hi"}, "body.agent_type"),
        ({"agent_type": "a", "content": "hi", "multitask_strategy": "sometimes"},
         "body.multitask_strategy"),
        ({"agnet_type": "a", "agent_type": "a", "content": "hi"}, "body.agnet_type"),
        ({"agent_type": "a", "content": 42}, "body.content"),
        ({"agent_type": "a", "content": "   "}, "content"),
        ({"agent_type": "a{b}", "content": "hi"}, "agent_type"),
        ({"agent_type": "a", "content": "hi", "message_id": "m\n1"}, "message_id"),
    ]  # fmt: skip
    for payload, field in cases:
        r = await http.post(f"{url}/v1/messages", headers=ACME, json=payload)
        assert r.status_code == 422, (payload, r.text)
        assert r.json()["field"] == field, (payload, r.json())
        assert r.json()["error"].startswith(field), r.json()
    r = await http.post(f"{url}/v1/sessions/a{{b}}/messages", headers=ACME, json=cases[0][0])
    assert r.status_code == 422
    r = await http.post(
        f"{url}/v1/sessions/a{{b}}/messages",
        headers=ACME,
        json={"agent_type": "a", "content": "hi"},
    )
    assert r.status_code == 422 and r.json()["field"] == "session_id"
    r = await http.post(
        f"{url}/v1/messages",
        headers={**ACME, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert r.status_code == 422 and r.json()["field"].startswith("body")
    r = await http.post(
        f"{url}/v1/messages",
        headers=ACME,
        json={"agent_type": "a", "content": "hi", "require_online_worker": False},
    )
    session = r.json()["session_id"]
    r = await http.get(
        f"{url}/v1/sessions/{session}/events", headers={**ACME, "Last-Event-ID": "yesterday"}
    )
    assert r.status_code == 422 and r.json()["field"] == "Last-Event-ID"
    r = await http.get(
        f"{url}/v1/sessions/{session}/events", headers=ACME, params={"stop_at_end": "maybe"}
    )
    assert r.status_code == 422 and r.json()["field"] == "query.stop_at_end"
    r = await http.post(
        f"{url}/v1/sessions/{session}/cancel", headers=ACME, json={"mode": "gently"}
    )
    assert r.status_code == 422 and r.json()["field"] == "body.mode"


async def test_cors_answers_configured_origins_only(serve, http: httpx.AsyncClient) -> None:
    _, url = serve("--cors-origin", APP, env={"BYWAY_SERVER_MAX_BODY_BYTES": "2000"})
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key,content-type",
    }
    r = await http.options(f"{url}/v1/messages", headers={"Origin": APP, **preflight})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == APP
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "x-api-key" in r.headers["access-control-allow-headers"].lower()
    r = await http.options(
        f"{url}/v1/messages", headers={"Origin": "http://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in r.headers
    r = await http.get(f"{url}/healthz", headers={"Origin": APP})
    assert r.headers["access-control-allow-origin"] == APP
    r = await http.get(f"{url}/healthz", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    # a refusal a page can read: the 401 and the 413 carry the header too
    r = await http.post(f"{url}/v1/messages", headers={"Origin": APP}, json={})
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == APP
    r = await http.post(
        f"{url}/v1/messages", headers={**ACME, "Origin": APP}, json={"content": "x" * 5000}
    )
    assert r.status_code == 413 and r.headers["access-control-allow-origin"] == APP


def _serve(settings: RedisSettings, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "byway", "serve", "--port", str(free_port()),
               "--namespace", settings.namespace, *args]  # fmt: skip
    full = {**worker_env(settings), "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        command,
        env={k: v for k, v in full.items() if v},
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        cwd=ROOT,
    )


def test_without_keys_it_binds_loopback_only(settings: RedisSettings) -> None:
    done = _serve(settings, "--host", "0.0.0.0", env={"BYWAY_SERVER_API_KEYS": ""})
    assert done.returncode == 2
    assert "no API keys configured: refusing to bind 0.0.0.0" in done.stderr
    assert "BYWAY_SERVER_API_KEYS" in done.stderr
    # configuration errors name the variable
    done = _serve(settings, env={"BYWAY_SERVER_HEARTBEAT_SECONDS": "nan"})
    assert done.returncode == 2 and "BYWAY_SERVER_HEARTBEAT_SECONDS" in done.stderr
    done = _serve(settings, env={"BYWAY_SERVER_API_KEYS": "acme=short"})
    assert done.returncode == 2 and "shorter than 16" in done.stderr


async def test_without_keys_this_machine_is_one_tenant(
    serve, workers, http: httpx.AsyncClient, client: GatewayClient
) -> None:
    """No keys (loopback only): no key needed, and a backend's own session is readable."""
    workers("streamer")
    _, url = serve(env={"BYWAY_SERVER_API_KEYS": ""})
    await wait_online(client, "streamer")
    r = await http.post(f"{url}/v1/messages", json={"agent_type": "streamer", "content": "2"})
    assert r.status_code == 202, r.text
    got = await frames(http, url + r.json()["events_url"])
    assert [f.content for f in got if f.event == "answerDelta"] == tokens(2)
    session = f"backend-{uuid.uuid4().hex}"
    sent = await client.send_message("streamer", session, "1")
    got = await frames(
        http, f"{url}/v1/sessions/{session}/events", params={"until_message_id": sent.message_id}
    )
    assert [f.content for f in got if f.event == "answerDelta"] == tokens(1)
    # a page elsewhere that renames itself to 127.0.0.1 (DNS rebinding) is not this machine
    r = await http.get(f"{url}/v1/sessions/{session}/executions", headers={"Host": "evil.test"})
    assert r.status_code == 400


async def test_readiness_follows_redis(settings: RedisSettings, serve, http) -> None:
    _, url = serve("--redis-url", f"redis://127.0.0.1:{free_port()}/0")
    assert (await http.get(f"{url}/healthz")).status_code == 200
    r = await http.get(f"{url}/readyz")
    assert r.status_code == 503 and "Redis" in r.json()["error"]
    r = await http.post(
        f"{url}/v1/messages", headers=ACME, json={"agent_type": "a", "content": "hi"}
    )
    assert r.status_code == 503 and "Redis" in r.json()["error"]
    _, good = serve()
    r = await http.get(f"{good}/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
