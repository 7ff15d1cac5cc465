"""ADK agents served by worker processes: real agents on a scripted model, no network.
Where a run stops (a long-running tool, a confirmation, a call, a cancel), the test makes
it go on on the other worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from byway_adk import RedisSessionService

from byway import Event, EventType, GatewayClient, RedisSettings
from tests.conftest import (
    ROOT,
    spawn_worker,
    stop_process,
    until_status,
    wait_online,
    worker_command,
    worker_env,
)

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

AGENTS = "tests.agents.adk_agents"


async def _events(client: GatewayClient, session: str) -> list[Event]:
    return [e async for e in client.stream(session, idle_timeout=0.5)]


def _said(session: Any) -> list[tuple[str, str]]:
    """(author, text) of the session's events that carry text."""
    return [
        (e.author, "".join(p.text or "" for p in e.content.parts))
        for e in session.events
        if e.content and any(p.text for p in e.content.parts or [])
    ]


def _serve(
    settings: RedisSettings, target: str, agent_type: str, *worker_ids: str
) -> dict[str, subprocess.Popen[bytes]]:
    return {
        w: spawn_worker(target, settings, "--agent-type", agent_type, worker_id=w)
        for w in worker_ids
    }


def _stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        stop_process(proc)


async def _adk_session(redis: Any, settings: RedisSettings, app: str, user: str, sid: str) -> Any:
    service = RedisSessionService(redis, namespace=settings.namespace)
    session = await service.get_session(app_name=app, user_id=user, session_id=sid)
    assert session is not None, f"no ADK session {app}/{user}/{sid}"
    return session


async def test_partial_text_streams_in_order_and_the_answer_and_state_are_adks(
    client: GatewayClient, settings: RedisSettings, redis: Any
) -> None:
    procs = _serve(settings, f"{AGENTS}:chat_agent", "adk-chat", "chat-a", "chat-b")
    try:
        await wait_online(client, "adk-chat", count=2)
        sent = await client.send_message("adk-chat", "adk-stream", "hello there", user_code="ana")
        events = [
            e
            async for e in client.stream(
                "adk-stream", until_message_id=sent.message_id, stop_at_end=True, idle_timeout=30
            )
        ]
        record = await client.registry.get_execution_by_message("adk-stream", sent.message_id)
    finally:
        _stop(procs)
    answer = "1 message(s) so far, the last: hello there"
    tokens = [e.data["content"] for e in events if e.event_type == EventType.ANSWER_DELTA]
    assert "".join(tokens) == answer and len(tokens) == 8  # word by word, in order
    assert {
        e.data["metadata"]["author"] for e in events if e.event_type == EventType.ANSWER_DELTA
    } == {"chat"}
    [final] = [e for e in events if e.event_type == EventType.FINAL_ANSWER]
    assert final.data["content"] == answer
    assert final.metadata["adk"]["session_id"] == "adk-stream"
    deltas = [e.data["metadata"]["delta"] for e in events if e.data.get("state") == "state_delta"]
    assert deltas == [{"turns": 1}, {"last_answer": answer}]
    session = await _adk_session(redis, settings, "chat", "ana", "adk-stream")
    assert session.state == {"turns": 1, "last_answer": answer}
    assert _said(session) == [("user", "hello there"), ("chat", answer)]
    usage = {"input_tokens": 10, "output_tokens": 8, "total_tokens": 18}
    assert final.metadata["usage"] == usage
    assert record is not None and record.result is not None and record.result["usage"] == usage


async def test_messages_in_a_row_keep_one_adk_session_across_workers(
    client: GatewayClient, settings: RedisSettings, redis: Any
) -> None:
    procs = _serve(settings, f"{AGENTS}:chat_agent", "adk-chat", "row-a", "row-b")
    try:
        await wait_online(client, "adk-chat", count=2)
        # two at once: the second waits for the first (one writer per session)
        first = await client.send_message("adk-chat", "adk-row", "first", user_code="ana")
        second = await client.send_message("adk-chat", "adk-row", "second", user_code="ana")
        finals = [
            await client.wait_for_final("adk-row", m.message_id, timeout=30)
            for m in (first, second)
        ]
        ran = await client.registry.get_execution_by_message("adk-row", second.message_id)
        assert ran is not None
        stop_process(procs.pop(ran.worker_id))  # the third message runs on the other worker
        third = await client.send_message("adk-chat", "adk-row", "third", user_code="ana")
        finals.append(await client.wait_for_final("adk-row", third.message_id, timeout=30))
        last = await client.registry.get_execution_by_message("adk-row", third.message_id)
    finally:
        _stop(procs)
    assert [f.data["status"] for f in finals] == ["COMPLETED"] * 3
    assert [f.data["content"] for f in finals] == [
        "1 message(s) so far, the last: first",
        "2 message(s) so far, the last: second",
        "3 message(s) so far, the last: third",
    ]
    assert last is not None and last.worker_id != ran.worker_id
    session = await _adk_session(redis, settings, "chat", "ana", "adk-row")
    assert session.state["turns"] == 3
    assert [who for who, _ in _said(session)] == ["user", "chat"] * 3


async def test_a_long_running_tool_waits_on_one_worker_and_resumes_on_the_other(
    client: GatewayClient, settings: RedisSettings, redis: Any
) -> None:
    procs = _serve(settings, f"{AGENTS}:approvals_agent", "adk-approvals", "lr-a", "lr-b")
    try:
        await wait_online(client, "adk-approvals", count=2)
        sent = await client.send_message(
            "adk-approvals", "adk-lr", 'call ask_manager {"amount": 50}', user_code="ana"
        )
        asked = await until_status(client, "adk-lr", sent.message_id, "WAITING_USER")
        assert stop_process(procs.pop(asked.worker_id)) == 0  # the asking worker is gone
        [question] = [
            e for e in await _events(client, "adk-lr") if e.data.get("kind") == "ask_user"
        ]
        [call] = question.data["metadata"]["function_calls"]
        assert (call["name"], call["kind"], call["args"]) == (
            "ask_manager",
            "long_running",
            {"amount": 50},
        )
        await client.resume("adk-lr", sent.message_id, "", reply_data={"decision": "approved"})
        final = await client.wait_for_final("adk-lr", sent.message_id, timeout=30)
        record = await client.registry.get_execution_by_message("adk-lr", sent.message_id)
    finally:
        _stop(procs)
    # the model's next call saw a function response named ask_manager with the answer
    assert final.data["content"] == 'ask_manager answered {"decision": "approved"}'
    assert record is not None and record.worker_id != asked.worker_id
    assert record.execution_id == asked.execution_id
    session = await _adk_session(redis, settings, "approvals", "ana", "adk-lr")
    answers = [r for e in session.events if e.author == "user" for r in e.get_function_responses()]
    assert [(r.id, r.name, r.response) for r in answers] == [
        (call["id"], "ask_manager", {"decision": "approved"})
    ]


@pytest.mark.parametrize(("answer", "expected"), [("yes", '{"refunded": 7}'), ("no", "rejected")])
async def test_a_tool_confirmation_is_asked_and_answered(
    client: GatewayClient, settings: RedisSettings, answer: str, expected: str
) -> None:
    procs = _serve(settings, f"{AGENTS}:approvals_agent", "adk-approvals", "cf-a", "cf-b")
    session_id = f"adk-confirm-{answer}"
    try:
        await wait_online(client, "adk-approvals", count=2)
        sent = await client.send_message("adk-approvals", session_id, 'call refund {"amount": 7}')
        asked = await until_status(client, session_id, sent.message_id, "WAITING_USER")
        stop_process(procs.pop(asked.worker_id))
        [question] = [
            e for e in await _events(client, session_id) if e.data.get("kind") == "ask_user"
        ]
        [call] = question.data["metadata"]["function_calls"]
        assert (call["name"], call["kind"], call["tool"]) == (
            "adk_request_confirmation",
            "confirmation",
            "refund",
        )
        assert "refund" in question.data["prompt"]
        await client.resume(session_id, sent.message_id, answer)
        final = await client.wait_for_final(session_id, sent.message_id, timeout=30)
    finally:
        _stop(procs)
    assert final.data["content"].startswith("refund answered ")
    assert expected in final.data["content"]


async def test_mixed_tree_langgraph_supervisor_adk_specialist_asks_the_user(
    client: GatewayClient, settings: RedisSettings
) -> None:
    procs = {
        **_serve(settings, f"{AGENTS}:supervisor_graph", "supervisor", "sup"),
        **_serve(settings, f"{AGENTS}:specialist_agent", "adk-specialist", "spec-a", "spec-b"),
    }
    try:
        await wait_online(client, "supervisor")
        await wait_online(client, "adk-specialist", count=2)
        sent = await client.send_message("supervisor", "adk-tree", "Lisbon")
        question = None
        for _ in range(400):
            events = await _events(client, "adk-tree")
            asks = [e for e in events if e.data.get("kind") == "ask_user"]
            if asks:
                [question] = asks
                break
        assert question is not None, "the specialist never asked"
        asker = await until_status(client, "adk-tree", question.message_id, "WAITING_USER")
        stop_process(procs.pop(asker.worker_id))  # the answer resumes on the other one
        assert question.source_agent_type == "adk-specialist"
        assert question.message_id != sent.message_id
        [call] = question.data["metadata"]["function_calls"]
        assert call["args"] == {"question": "which dates for Lisbon?"}
        await client.resume("adk-tree", question.message_id, "May 3-5")
        final = await client.wait_for_final("adk-tree", sent.message_id, timeout=40)
        events = await _events(client, "adk-tree")
    finally:
        _stop(procs)
    specialist_answer = 'ask_customer answered {"result": "May 3-5"}'
    assert final.data["content"] == f"supervisor: {specialist_answer}"
    root = [e for e in events if e.message_id == sent.message_id]
    assert [e.event_type for e in root].count(EventType.FINAL_ANSWER) == 1
    assert [e.event_type for e in root].count(EventType.APP_STREAM_RESPONSE) == 1
    child = await client.registry.get_execution_by_message("adk-tree", question.message_id)
    assert child is not None and child.status == "COMPLETED"


async def test_an_adk_agent_calls_a_langgraph_agent_without_holding_its_slot(
    client: GatewayClient, settings: RedisSettings
) -> None:
    procs = {
        **_serve(settings, f"{AGENTS}:caller_agent", "adk-caller", "caller"),
        **_serve(settings, "tests.agents.graphs:chat_graph", "lg-chat", "writer"),
    }
    try:
        await wait_online(client, "adk-caller")
        await wait_online(client, "lg-chat")
        sent = await client.send_message(
            "adk-caller", "adk-call", 'call writer {"request": "a line"}'
        )
        final = await client.wait_for_final("adk-call", sent.message_id, timeout=40)
        record = await client.registry.get_execution_by_message("adk-call", sent.message_id)
    finally:
        _stop(procs)
    reply = json.loads(final.data["content"].removeprefix("writer answered "))
    assert reply == {
        "content": "the quick brown fox jumps over the dog",
        "reply_data": None,
        "status": "COMPLETED",
    }
    assert record is not None and "WAITING_AGENT" in record.states


async def test_cancel_stops_the_invocation_and_the_session_goes_on(
    client: GatewayClient, settings: RedisSettings
) -> None:
    procs = _serve(settings, f"{AGENTS}:approvals_agent", "adk-approvals", "cx-a", "cx-b")
    try:
        await wait_online(client, "adk-approvals", count=2)
        sent = await client.send_message(
            "adk-approvals", "adk-cancel", 'call slow_lookup {"query": "flights"}'
        )
        await until_status(client, "adk-cancel", sent.message_id, "RUNNING")
        await asyncio.sleep(0.5)  # inside the 30 s tool
        cancelled_at = time.monotonic()
        await client.cancel_task(sent.message_id, "adk-cancel")
        final = await client.wait_for_final("adk-cancel", sent.message_id, timeout=20)
        took = time.monotonic() - cancelled_at
        # the cancelled call was closed in the ADK session: the next message just works
        after = await client.send_message("adk-approvals", "adk-cancel", "hello again")
        next_final = await client.wait_for_final("adk-cancel", after.message_id, timeout=30)
    finally:
        _stop(procs)
    assert final.data["status"] == "CANCELLED"
    assert took < 5
    assert next_final.data["status"] == "COMPLETED"
    assert next_final.data["content"] == "2 message(s) so far, the last: hello again"


async def test_an_adk_error_fails_the_task_with_adks_code(
    client: GatewayClient, settings: RedisSettings
) -> None:
    procs = _serve(settings, f"{AGENTS}:chat_agent", "adk-chat", "err")
    try:
        await wait_online(client, "adk-chat")
        sent = await client.send_message("adk-chat", "adk-error", "error please")
        final = await client.wait_for_final("adk-error", sent.message_id, timeout=30)
    finally:
        _stop(procs)
    assert final.data["status"] == "FAILED"
    assert final.data["error"] == {"type": "SAFETY", "message": "the scripted model refused"}


async def test_a_worker_killed_mid_invocation_is_continued_without_a_second_user_turn(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    client: GatewayClient,
    settings: RedisSettings,
    redis: Any,
) -> None:
    log = tmp_path / "steps.log"
    monkeypatch.setenv("BYWAY_TEST_ADK_LOG", str(log))
    procs = {
        w: spawn_worker(
            f"{AGENTS}:chat_agent",
            settings,
            "--agent-type",
            "adk-chat",
            "--lease-seconds",
            "3",  # a loaded machine must not look dead
            worker_id=w,
        )
        for w in ("kill-a", "kill-b")
    }
    try:
        await wait_online(client, "adk-chat", count=2, timeout=60)  # slow imports
        sent = await client.send_message(
            "adk-chat", "adk-kill", 'call slow_step {"step": "draft"}', user_code="ana"
        )
        for _ in range(400):
            if log.exists() and "start draft" in log.read_text():
                break
            await asyncio.sleep(0.025)
        victim = (await until_status(client, "adk-kill", sent.message_id, "RUNNING")).worker_id
        procs[victim].send_signal(signal.SIGKILL)  # inside the slow tool
        final = await client.wait_for_final("adk-kill", sent.message_id, timeout=40)
        record = await client.registry.get_execution_by_message("adk-kill", sent.message_id)
    finally:
        _stop(procs)
    assert final.data["content"] == 'slow_step answered {"done": "draft"}'
    assert record is not None and record.worker_id != victim
    session = await _adk_session(redis, settings, "chat", "ana", "adk-kill")
    users = [text for who, text in _said(session) if who == "user"]
    assert users == ['call slow_step {"step": "draft"}']  # the message is in it once
    calls = [c.id for e in session.events for c in e.get_function_calls()]
    responses = {r.id for e in session.events for r in e.get_function_responses()}
    assert len(calls) == 2 and set(calls) <= responses  # the interrupted call answered too
    assert log.read_text().splitlines().count("end draft") == 1


@pytest.fixture
async def session_db(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database for ADK's DatabaseSessionService: on the PostgreSQL server when
    one is reachable (BYWAY_TEST_POSTGRES_DSN, else 127.0.0.1:5432/test), else a SQLite
    file."""
    import asyncpg

    dsn = os.environ.get("BYWAY_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        admin = await asyncpg.connect(dsn, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        yield f"sqlite+aiosqlite:///{tmp_path / 'adk.db'}"
        return
    name = f"byway_adk_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_with_a_database_url_sessions_live_in_adks_database_service(
    monkeypatch: pytest.MonkeyPatch, session_db: str, client: GatewayClient, settings: RedisSettings
) -> None:
    from google.adk.sessions import DatabaseSessionService

    monkeypatch.setenv("BYWAY_ADK_SESSION_DB_URL", session_db)
    procs = _serve(settings, f"{AGENTS}:chat_agent", "adk-chat", "db-a", "db-b")
    try:
        await wait_online(client, "adk-chat", count=2)
        sent = [
            await client.send_message("adk-chat", "adk-db", text, user_code="ana")
            for text in ("first", "second")
        ]
        finals = [await client.wait_for_final("adk-db", m.message_id, timeout=30) for m in sent]
        ran = await client.registry.get_execution_by_message("adk-db", sent[1].message_id)
        assert ran is not None
        stop_process(procs.pop(ran.worker_id))
        third = await client.send_message("adk-chat", "adk-db", "third", user_code="ana")
        finals.append(await client.wait_for_final("adk-db", third.message_id, timeout=30))
    finally:
        _stop(procs)
    assert [f.data["content"] for f in finals] == [
        f"{n} message(s) so far, the last: {text}"
        for n, text in ((1, "first"), (2, "second"), (3, "third"))
    ]
    service = DatabaseSessionService(db_url=session_db)
    try:
        session = await service.get_session(app_name="chat", user_id="ana", session_id="adk-db")
    finally:
        await service.close()
    assert session is not None and session.state["turns"] == 3
    assert [who for who, _ in _said(session)] == ["user", "chat"] * 3
    assert not await RedisSessionService(client.redis, namespace=settings.namespace).get_session(
        app_name="chat", user_id="ana", session_id="adk-db"
    )  # nothing went to Redis


async def test_a_force_cancel_stops_the_tool_it_was_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, client: GatewayClient, settings: RedisSettings
) -> None:
    log = tmp_path / "steps.log"
    monkeypatch.setenv("BYWAY_TEST_ADK_LOG", str(log))
    procs = _serve(settings, f"{AGENTS}:chat_agent", "adk-chat", "force")
    try:
        await wait_online(client, "adk-chat")
        sent = await client.send_message("adk-chat", "adk-force", 'call slow_step {"step": "x"}')
        for _ in range(400):
            if log.exists() and "start x" in log.read_text():
                break
            await asyncio.sleep(0.025)
        await client.cancel_task(sent.message_id, "adk-force", cancel_mode="force")
        final = await client.wait_for_final("adk-force", sent.message_id, timeout=20)
        await asyncio.sleep(3.5)  # past the end of the 3 s step, had it gone on
    finally:
        _stop(procs)
    assert final.data["status"] == "CANCELLED"
    assert log.read_text().splitlines() == ["start x"]  # the tool never finished


def _serve_logged(
    settings: RedisSettings, target: str, agent_type: str, logs: Path, *worker_ids: str
) -> dict[str, subprocess.Popen[bytes]]:
    """Worker processes whose output goes to ``logs/<worker id>.log``; a lease of 5 s,
    so that a loaded machine's slow worker does not look dead."""
    procs = {}
    for w in worker_ids:
        cmd = worker_command(
            target, settings, "--agent-type", agent_type, "--lease-seconds", "5", "--worker-id", w
        )
        env = {
            **worker_env(settings),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        with open(logs / f"{w}.log", "wb") as out:
            procs[w] = subprocess.Popen(
                cmd, env={k: v for k, v in env.items() if v}, cwd=ROOT, stdout=out, stderr=out
            )
    return procs


def _parts(session: Any) -> list[tuple[str, str]]:
    """(author, what) of each event, for a failure's message."""
    return [
        (
            e.author,
            " ".join(
                p.text
                or (p.function_call and f"call {p.function_call.name}")
                or (p.function_response and f"answer {p.function_response.name}")
                or "?"
                for p in (e.content.parts or [] if e.content else [])
            ),
        )
        for e in session.events
    ]


def _output(logs: Path) -> str:
    return "".join(p.read_text() for p in sorted(logs.glob("rk-*.log")))


def _logged(log: Path, line: str) -> bool:
    return log.exists() and line in log.read_text()


async def _until_logged(log: Path, line: str) -> None:
    for _ in range(1200):
        if _logged(log, line):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{line!r} never logged")


_KILLED_RESUMES = {
    # a confirmed tool runs in the resumed run
    "confirmation": ('call slow_refund {"amount": 9}', "yes", None, "start refund 9"),
    # the model's next call after the long-running tool's answer runs in it
    "long_running": (
        'call ask_manager {"amount": 50}',
        "",
        {"decision": "approved", "then": 'call slow_step {"step": "pay"}'},
        "start pay",
    ),
}


@pytest.mark.parametrize("kind", sorted(_KILLED_RESUMES))
async def test_a_worker_killed_in_a_resumed_run_leaves_one_function_response(
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    client: GatewayClient,
    settings: RedisSettings,
    redis: Any,
) -> None:
    text, answer, reply_data, started = _KILLED_RESUMES[kind]
    session_id = f"adk-rekill-{kind}"
    steps = tmp_path / "steps.log"
    monkeypatch.setenv("BYWAY_TEST_ADK_LOG", str(steps))
    procs = _serve_logged(
        settings, f"{AGENTS}:approvals_agent", "adk-approvals", tmp_path, "rk-a", "rk-b"
    )
    try:
        await wait_online(client, "adk-approvals", count=2, timeout=60)  # slow imports
        sent = await client.send_message("adk-approvals", session_id, text, user_code="ana")
        asked = await until_status(client, session_id, sent.message_id, "WAITING_USER")
        [question] = [
            e for e in await _events(client, session_id) if e.data.get("kind") == "ask_user"
        ]
        [call] = question.data["metadata"]["function_calls"]
        await client.resume(session_id, sent.message_id, answer, reply_data=reply_data)
        await _until_logged(steps, started)  # inside the tool the resumed run calls
        victim = (await until_status(client, session_id, sent.message_id, "RUNNING")).worker_id
        procs[victim].send_signal(signal.SIGKILL)
        final = await client.wait_for_final(session_id, sent.message_id, timeout=40)
        record = await client.registry.get_execution_by_message(session_id, sent.message_id)
        after = await client.send_message("adk-approvals", session_id, "hello", user_code="ana")
        next_final = await client.wait_for_final(session_id, after.message_id, timeout=30)
    finally:
        _stop(procs)
    assert final.data["status"] == "COMPLETED"
    assert record is not None and record.worker_id != victim
    session = await _adk_session(redis, settings, "approvals", "ana", session_id)
    assert next_final.data["content"] == "2 message(s) so far, the last: hello", _parts(session)
    answered = [
        r.id for e in session.events if e.author == "user" for r in e.get_function_responses()
    ]
    assert answered == [call["id"]]  # the user's answer is in the session once
    calls = [c for e in session.events for c in e.get_function_calls()]
    responses = {r.id for e in session.events for r in e.get_function_responses()}
    assert all(c.id in responses for c in calls)  # every call the model made has an answer
    # ADK repairs no history, in the run that goes on or in the turns after
    assert "Dropping function calls" not in _output(tmp_path)
    if kind == "confirmation":
        assert final.data["content"] == 'slow_refund answered {"refunded": 9}'
        # the tool ran again after the crash (at-least-once), under the same idempotency key
        [refund] = [c for c in calls if c.name == "slow_refund"]
        key = f"{asked.execution_id}:{refund.id}"
        assert steps.read_text().splitlines() == [
            f"start refund 9 {key}",
            f"start refund 9 {key}",
            f"end refund 9 {key}",
        ]
    else:
        assert final.data["content"] == 'slow_step answered {"done": "pay"}'
        # the call the dead run left open is answered as interrupted; the model made it again
        assert [c.name for c in calls] == ["ask_manager", "slow_step", "slow_step"]
        interrupted = [
            r.response
            for e in session.events
            for r in e.get_function_responses()
            if r.id == calls[1].id
        ]
        assert [r["status"] for r in interrupted] == ["INTERRUPTED"]
        assert steps.read_text().splitlines() == ["start pay", "start pay", "end pay"]
