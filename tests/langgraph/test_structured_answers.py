"""Structured answers to LangGraph interrupts, from the CLI and from ``client.resume``,
served by two worker processes: a review in the HITL middleware's shape (``{"decisions":
[...]}``) and two interrupts answered apart by id."""

from __future__ import annotations

import json
import subprocess

import pytest

from byway import Event, GatewayClient, RedisSettings
from tests.conftest import run_cli, spawn_worker, stop_process, until_status, wait_online

pytest.importorskip("byway_langgraph")
pytestmark = [pytest.mark.redis, pytest.mark.timeout(240)]


def _serve(settings: RedisSettings, name: str) -> list[subprocess.Popen[bytes]]:
    return [spawn_worker(f"tests.agents.answer_graphs:{name}", settings) for _ in range(2)]


async def _question(client: GatewayClient, session: str, nth: int = 1) -> Event:
    for _ in range(100):
        asks = [e async for e in client.stream(session, idle_timeout=0.3) if e.kind == "ask_user"]
        if len(asks) >= nth:
            return asks[nth - 1]
    raise AssertionError(f"question {nth} of {session} never came")


async def test_a_review_is_approved_from_the_cli_and_rejected_with_a_dict(
    client: GatewayClient, settings: RedisSettings
) -> None:
    procs = _serve(settings, "review")
    try:
        await wait_online(client, "review", count=2, timeout=90)
        approve = await client.send_message("review", "lg-approve", "prod")
        await until_status(client, "lg-approve", approve.message_id, "WAITING_USER")
        decision = json.dumps({"decisions": [{"type": "approve"}]})
        out = run_cli(settings, "resume", "lg-approve", approve.message_id, "--json", decision)
        assert out.returncode == 0, out.stderr
        approved = await client.wait_for_final("lg-approve", approve.message_id, timeout=30)

        reject = await client.send_message("review", "lg-reject", "prod")
        await until_status(client, "lg-reject", reject.message_id, "WAITING_USER")
        await client.resume("lg-reject", reject.message_id, {"decisions": [{"type": "reject"}]})
        rejected = await client.wait_for_final("lg-reject", reject.message_id, timeout=30)
        stale = run_cli(settings, "resume", "lg-reject", reject.message_id, "--json", decision)
    finally:
        for proc in procs:
            stop_process(proc)
    assert (approved.data["status"], approved.data["content"]) == ("COMPLETED", "approve")
    assert (rejected.data["status"], rejected.data["content"]) == ("COMPLETED", "reject")
    assert stale.returncode == 2 and "already finished with status COMPLETED" in stale.stderr


async def test_two_interrupts_are_answered_apart_with_interrupt_id_value(
    client: GatewayClient, settings: RedisSettings
) -> None:
    procs = _serve(settings, "two")
    try:
        await wait_online(client, "two", count=2, timeout=90)
        sent = await client.send_message("two", "lg-apart", "go")
        await until_status(client, "lg-apart", sent.message_id, "WAITING_USER")
        first = await _question(client, "lg-apart")
        ids = {i["value"]["question"]: i["id"] for i in first.data["metadata"]["interrupts"]}
        shown = run_cli(settings, "stream", "lg-apart", "--idle-timeout", "0.5")
        one = run_cli(settings, "resume", "lg-apart", sent.message_id, "--interrupt",
                   f"{ids['count?']}=3")  # fmt: skip
        assert one.returncode == 0, one.stderr
        second = await _question(client, "lg-apart", nth=2)
        left = [i["id"] for i in second.data["metadata"]["interrupts"]]
        other = run_cli(settings, "resume", "lg-apart", sent.message_id, "--interrupt",
                     f"{ids['color?']}=red")  # fmt: skip
        assert other.returncode == 0, other.stderr
        final = await client.wait_for_final("lg-apart", sent.message_id, timeout=30)
    finally:
        for proc in procs:
            stop_process(proc)
    # the question shows every open interrupt with its id
    assert f"id={ids['count?']}: count?" in shown.stdout
    assert f"id={ids['color?']}: color?" in shown.stdout
    assert left == [ids["color?"]]  # the first answer took one interrupt only
    assert final.data["content"] == 'color="red"; count=3'  # 3 as a number, red as text


async def test_follow_answers_each_open_interrupt_by_its_id(
    client: GatewayClient, settings: RedisSettings
) -> None:
    procs = _serve(settings, "two")
    try:
        await wait_online(client, "two", count=2, timeout=90)
        # one line per question, in the order shown: a JSON object is sent as one
        out = run_cli(settings, "send", "two", "go", "--session", "lg-follow", "--follow",
                   stdin='{"n": 3}\nred\n')  # fmt: skip
        assert out.returncode == 0, (out.stdout, out.stderr)
        line = next(x for x in out.stderr.splitlines() if " · message " in x)
        final = await client.wait_for_final("lg-follow", line.rsplit(" ", 1)[1], timeout=10)
    finally:
        for proc in procs:
            stop_process(proc)
    assert "[1] id=" in out.stdout and "[2] id=" in out.stdout
    assert "--interrupt" in out.stderr  # the hint shows how to answer them apart
    answers = sorted(part.split("=", 1)[1] for part in final.data["content"].split("; "))
    assert answers == ['"red"', '{"n": 3}']  # each interrupt got its own line's answer
