"""Answers to questions: any JSON value reaches the asking task, an answer no task waits
for is refused to its sender, and one that reaches a worker unwanted is told to the
session. Real Redis, worker processes, the real CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import msgspec
import pytest

from byway import (
    Event,
    GatewayClient,
    MessageHeader,
    RedisSettings,
    ResumeCommand,
    ResumeRefusedError,
)
from byway.protocol import encode_command
from tests.conftest import run_cli, spawn_worker, stop_process, until_status, wait_online

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

ASKER = "tests.agents.answers:asker"


async def _events(client: GatewayClient, session: str) -> list[Event]:
    return [e async for e in client.stream(session, idle_timeout=0.5)]


def _workers(settings: RedisSettings, count: int = 2) -> list[subprocess.Popen[bytes]]:
    return [spawn_worker(ASKER, settings) for _ in range(count)]


async def test_a_structured_answer_reaches_the_handler_as_reply_data(
    client: GatewayClient, settings: RedisSettings
) -> None:
    procs = _workers(settings)
    try:
        await wait_online(client, "asker", count=2)
        sent = await client.send_message("asker", "a-dict", "deploy?")
        await until_status(client, "a-dict", sent.message_id, "WAITING_USER")
        answer = {"decisions": [{"type": "approve"}], "note": "ça va"}
        answered = await client.resume("a-dict", sent.message_id, answer)
        assert answered.success
        final = await client.wait_for_final("a-dict", sent.message_id, timeout=30)

        from_cli = await client.send_message("asker", "a-cli", "deploy?")
        await until_status(client, "a-cli", from_cli.message_id, "WAITING_USER")
        out = run_cli(settings, "resume", "a-cli", from_cli.message_id, "--json", "[1, true]")
        assert out.returncode == 0, out.stderr
        cli_final = await client.wait_for_final("a-cli", from_cli.message_id, timeout=30)
    finally:
        for proc in procs:
            stop_process(proc)
    assert final.data["status"] == "COMPLETED"
    got = final.data["reply_data"]
    assert got["reply_data"] == answer  # the structure, as sent
    assert json.loads(got["content"]) == answer  # and its JSON text for text readers
    assert cli_final.data["reply_data"] == {"content": "[1, true]", "reply_data": [1, True]}


async def test_an_answer_no_task_waits_for_is_refused_with_the_reason(
    client: GatewayClient, settings: RedisSettings
) -> None:
    [proc] = _workers(settings, count=1)
    try:
        await wait_online(client, "asker")
        sent = await client.send_message("asker", "a-stale", "deploy?")
        await until_status(client, "a-stale", sent.message_id, "WAITING_USER")
        await client.resume("a-stale", sent.message_id, "yes")
        await client.wait_for_final("a-stale", sent.message_id, timeout=30)

        with pytest.raises(ResumeRefusedError, match="already finished with status COMPLETED"):
            await client.resume("a-stale", sent.message_id, "yes again")
        with pytest.raises(ResumeRefusedError, match="no execution of 'msg-nope'") as unknown:
            await client.resume("a-stale", "msg-nope", "yes")
        assert unknown.value.status == "UNKNOWN"
        with pytest.raises(ResumeRefusedError, match="in session 'other-session'"):
            await client.resume("other-session", sent.message_id, "yes")  # wrong session
        stale = run_cli(settings, "resume", "a-stale", sent.message_id, "--json", '{"a": 1}')
        assert stale.returncode == 2
        assert "already finished with status COMPLETED" in stale.stderr
    finally:
        stop_process(proc)
    events = await _events(client, "a-stale")
    finals = [e for e in events if e.event_type == "finalAnswer"]
    assert len(finals) == 1  # nothing ran again


# the RESUME script refuses it in the client's own write (key schema v1); under v2 the
# client checks, then writes, and a worker tells the session with answer_refused
@pytest.mark.standalone
async def test_a_second_answer_to_the_same_question_is_refused_before_any_worker_reads_it(
    client: GatewayClient, settings: RedisSettings
) -> None:
    [proc] = _workers(settings, count=1)
    try:
        await wait_online(client, "asker")
        sent = await client.send_message("asker", "a-twice", "deploy?")
        await until_status(client, "a-twice", sent.message_id, "WAITING_USER")
    finally:
        stop_process(proc)  # no worker: both answers would sit in the stream
    await client.resume("a-twice", sent.message_id, "first")
    with pytest.raises(ResumeRefusedError, match="answered already") as second:
        await client.resume("a-twice", sent.message_id, {"second": True})
    assert second.value.status == "ANSWERED"
    [proc] = _workers(settings, count=1)
    try:
        final = await client.wait_for_final("a-twice", sent.message_id, timeout=30)
    finally:
        stop_process(proc)
    assert final.data["reply_data"]["content"] == "first"


async def test_an_answer_a_worker_cannot_take_is_told_to_the_session(
    client: GatewayClient, settings: RedisSettings, redis: Any
) -> None:
    """Answers written by other clients (raw XADDs): one whose body does not decode (a
    dict as ``content``) is dead-lettered and the session hears it, the question stays
    open; one for a task that has finished is dropped and the session hears that."""
    stream = settings.keys.agent_stream("asker")

    def raw_resume(message_id: str, body: dict[str, Any]) -> bytes:
        header = MessageHeader(message_id=message_id, session_id="a-raw", trace_id="t" * 32)
        wire = {"action_type": "RESUME", "header": msgspec.to_builtins(header), "body": body}
        return msgspec.json.encode(wire)

    [proc] = _workers(settings, count=1)
    try:
        await wait_online(client, "asker")
        sent = await client.send_message("asker", "a-raw", "deploy?")
        await until_status(client, "a-raw", sent.message_id, "WAITING_USER")
        await redis.xadd(stream, {"data": raw_resume(sent.message_id, {"content": {"a": 1}})})
        refused = await _first(client, "a-raw", "answer_refused")
        assert refused.message_id == sent.message_id
        assert refused.data["waiting"] is True and refused.data["status"] == "WAITING_USER"
        assert "$.body.content" in refused.data["reason"]
        assert await client.dead_letters()  # kept, with its reason

        await client.resume("a-raw", sent.message_id, "yes")  # the question is still open
        await client.wait_for_final("a-raw", sent.message_id, timeout=30)
        late = ResumeCommand(
            header=MessageHeader(message_id=sent.message_id, session_id="a-raw", trace_id="t"),
            content="too late",
        )
        await redis.xadd(stream, {"data": encode_command(late)})
        events = await _until(client, "a-raw", lambda es: _count(es, "answer_refused") == 2)
    finally:
        stop_process(proc)
    last = [e for e in events if e.data.get("kind") == "answer_refused"][-1]
    assert last.data["waiting"] is False and last.data["status"] == "COMPLETED"
    assert "already finished with status COMPLETED" in last.data["reason"]
    assert _count(events, "final") == 1


def _count(events: list[Event], kind: str) -> int:
    return sum(1 for e in events if e.data.get("kind") == kind)


async def _until(client: GatewayClient, session: str, done: Any) -> list[Event]:
    for _ in range(100):
        events = await _events(client, session)
        if done(events):
            return events
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {[e.data for e in events]}")


async def _first(client: GatewayClient, session: str, kind: str) -> Event:
    events = await _until(client, session, lambda es: _count(es, kind) > 0)
    return next(e for e in events if e.data.get("kind") == kind)


async def test_follow_without_a_terminal_reads_answers_from_stdin_or_says_how_to_answer(
    client: GatewayClient, settings: RedisSettings
) -> None:
    procs = _workers(settings)
    try:
        await wait_online(client, "asker", count=2)
        piped = run_cli(
            settings, "send", "asker", "deploy?", "--session", "a-pipe", "--follow",
            stdin='{"approved": true}\n',
        )  # fmt: skip
        assert piped.returncode == 0, piped.stderr
        assert "reading it from stdin" in piped.stderr
        final = await client.wait_for_final("a-pipe", _message_of(piped), timeout=10)

        empty = run_cli(settings, "send", "asker", "deploy?", "--session", "a-eof", "--follow")
        assert empty.returncode == 3, (empty.stdout, empty.stderr)
        waiting = _message_of(empty)
        assert "stdin ended while the task waits" in empty.stderr
        assert f"byway resume a-eof {waiting} --json" in empty.stderr
        record = await client.registry.get_execution_by_message("a-eof", waiting)
    finally:
        for proc in procs:
            stop_process(proc)
    assert final.data["reply_data"]["reply_data"] == {"approved": True}
    assert "approve the deploy?" in piped.stdout and "expects:" in piped.stdout
    assert record is not None and record.status == "WAITING_USER"


def _message_of(done: subprocess.CompletedProcess[str]) -> str:
    """The message id ``send --follow`` printed on stderr (``session S · message M``)."""
    line = next(x for x in done.stderr.splitlines() if " · message " in x)
    return line.rsplit(" ", 1)[1]


async def test_a_message_sent_while_a_question_waits_says_so_and_status_counts_it(
    client: GatewayClient, settings: RedisSettings
) -> None:
    [proc] = _workers(settings, count=1)
    try:
        await wait_online(client, "asker")
        sent = await client.send_message("asker", "a-queue", "deploy?")
        await until_status(client, "a-queue", sent.message_id, "WAITING_USER")
        queued = run_cli(settings, "send", "asker", "and another", "--session", "a-queue")
        assert queued.returncode == 0, queued.stderr
        status = run_cli(settings, "status", "--json")
        human = run_cli(settings, "status")
        await client.resume("a-queue", sent.message_id, "yes")
        second = json.loads(queued.stdout)["message_id"]
        await until_status(client, "a-queue", second, "WAITING_USER")
        after = run_cli(settings, "status", "--json")
    finally:
        stop_process(proc)
    assert json.loads(queued.stdout)["queued_behind"] == sent.message_id
    assert f"queued behind {sent.message_id}, which waits for an answer" in queued.stderr
    assert "approve the deploy?" in queued.stderr
    assert f"byway resume a-queue {sent.message_id}" in queued.stderr
    [row] = json.loads(status.stdout)["agent_types"]
    assert (row["queued"], row["in_sessions"]) == (1, 1)
    assert "(in sessions)" in human.stdout
    assert json.loads(after.stdout)["agent_types"][0]["queued"] == 0


def test_each_open_question_is_shown_with_its_id_and_expected_answer() -> None:
    """An ADK question with two open calls, and an interrupt whose request says what it
    expects: every one is listed, readably, with the id that answers it."""
    from byway._prompt import render_ask

    adk = render_ask(
        "support",
        "msg-1",
        {
            "prompt": "two calls wait",
            "metadata": {
                "function_calls": [
                    {"id": "c1", "name": "ask_manager", "kind": "long_running", "args": {"x": 1}},
                    {"id": "c2", "name": "adk_request_confirmation", "kind": "confirmation",
                     "tool": "refund", "tool_args": {"amount": 7}},
                ]
            },
        },
    )  # fmt: skip
    assert '[1] id=c1: ask_manager({"x": 1})' in adk
    assert '[2] id=c2: confirm refund({"amount": 7})' in adk
    assert "expects: yes or no" in adk
    lg = render_ask(
        "review",
        "msg-2",
        {
            "prompt": "review",
            "metadata": {
                "interrupts": [
                    {"id": "i1", "value": {"a": 1}, "prompt": "deploy?\n\x1b[31mprod",
                     "expects": {"decisions": ["approve", "reject"]}},
                ]
            },
        },
    )  # fmt: skip
    assert "[1] id=i1: deploy?\n      \\x1b[31mprod" in lg  # lines kept, escapes shown
    assert 'expects: {"decisions": ["approve", "reject"]}' in lg


async def test_an_answer_its_worker_dead_letters_leaves_the_question_open_for_another(
    client: GatewayClient, settings: RedisSettings
) -> None:
    """The client takes an answer its worker cannot (here: nested deeper than the
    worker's BYWAY_MAX_DEPTH); the worker dead-letters it and tells the session the
    question still waits, and so it does: the next answer is taken, not refused as
    "answered already"."""
    proc = spawn_worker(ASKER, settings, env={"BYWAY_MAX_DEPTH": "6"})
    try:
        await wait_online(client, "asker")
        sent = await client.send_message("asker", "a-deep", "deploy?")
        await until_status(client, "a-deep", sent.message_id, "WAITING_USER")
        await client.resume("a-deep", sent.message_id, {"a": {"b": {"c": {"d": {"e": 1}}}}})
        refused = await _first(client, "a-deep", "answer_refused")
        assert refused.data["waiting"] is True
        await client.resume("a-deep", sent.message_id, "yes")
        final = await client.wait_for_final("a-deep", sent.message_id, timeout=30)
    finally:
        stop_process(proc)
    assert final.data["reply_data"]["content"] == "yes"


def test_ids_and_tool_names_from_the_wire_reach_the_terminal_escaped() -> None:
    """An interrupt id or a tool name with terminal control sequences (a hostile writer,
    a model's output) is shown escaped, like the question text beside it."""
    from byway._prompt import open_questions, render_ask, resume_hint

    evil = "i\x1b]0;pwned\x07"
    asked = {"prompt": "q", "metadata": {"interrupts": [{"id": evil, "value": "x"}]}}
    two = {"prompt": "q", "metadata": {"interrupts": [{"id": evil, "value": "x"}, {"id": "b"}]}}
    call = {"prompt": "q", "metadata": {"function_calls": [{"id": "c", "name": "t\x1b[2J"}]}}
    shown = [
        render_ask("w", "m", asked),
        render_ask("w", "m", two),
        render_ask("w", "m", call),
        resume_hint("s", "m", open_questions(two)),
    ]
    assert all("\x1b" not in text and "\x07" not in text for text in shown), shown
