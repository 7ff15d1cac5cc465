"""A worker restarted under its id (systemd, a pod restart) starts at once and takes its
work back; a taken-over task's record says so."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from byway import EventType, GatewayClient, RedisSettings
from byway._process import ProcessIdentity, holder_is_dead, start_time
from tests.conftest import spawn_worker, stop_process, wait_online

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


async def status_of(client: GatewayClient, session: str, message_id: str, status: str) -> str:
    """The worker id of ``message_id`` once its record says ``status`` (polls, 20 s)."""
    for _ in range(800):
        record = await client.registry.get_execution_by_message(session, message_id)
        if record and record.status == status:
            return record.worker_id
        await asyncio.sleep(0.025)
    raise AssertionError(f"{message_id} never reached {status}")


async def finals(client: GatewayClient, session: str) -> list[dict]:  # type: ignore[type-arg]
    events = [e async for e in client.stream(session, idle_timeout=0.5, block_ms=100)]
    return [e.data for e in events if e.event_type == EventType.FINAL_ANSWER]


async def test_a_killed_worker_restarted_under_its_id_starts_at_once_and_takes_its_task_back(
    client: GatewayClient, settings: RedisSettings
) -> None:
    # a lease far longer than the test: only a takeover explains a quick start
    lease = ("--lease-seconds", "300")
    proc = spawn_worker("tests.agents.basic:slow", settings, *lease, worker_id="k1")
    try:
        await wait_online(client, "slow")
        sent = await client.send_message("slow", "k1-s", "2")
        await status_of(client, "k1-s", sent.message_id, "RUNNING")
        proc.kill()  # SIGKILL: its lease stays live for 300 s
        proc.wait()
        proc = spawn_worker("tests.agents.basic:slow", settings, *lease, worker_id="k1")
        final = await client.wait_for_final("k1-s", sent.message_id, timeout=60)
        assert proc.poll() is None  # it was not refused
        lease_now = await client.registry.get_worker("k1")
    finally:
        stop_process(proc)
    assert final.data["status"] == "COMPLETED" and final.data["content"] == "slept"
    assert lease_now and lease_now.pid == proc.pid
    assert [f["status"] for f in await finals(client, "k1-s")] == ["COMPLETED"]
    record = await client.registry.get_execution_by_message("k1-s", sent.message_id)
    assert record and record.attempts == 2 and record.worker_id == "k1"
    assert isinstance(record.timeline, list)
    [takeover] = [e for e in record.timeline if (e.detail or {}).get("takeover_from")]
    assert takeover.status == "RUNNING" and takeover.detail == {"retry": 2, "takeover_from": "k1"}


async def test_a_live_holder_of_the_id_still_refuses_a_second_process(
    client: GatewayClient, settings: RedisSettings
) -> None:
    first = spawn_worker("tests.agents.basic:echo", settings, worker_id="k2")
    try:
        await wait_online(client, "echo")
        second = spawn_worker("tests.agents.basic:echo", settings, worker_id="k2")
        assert await asyncio.to_thread(second.wait, 60) != 0
        assert first.poll() is None
        holder = await client.registry.get_worker("k2")
    finally:
        stop_process(first)
    assert holder and holder.pid == first.pid


def test_only_a_provably_dead_holder_counts_as_dead() -> None:
    me = ProcessIdentity.current("here")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid no longer exists (until the system reuses it)
    dead = ProcessIdentity("here", gone.pid, me.boot_id, me.pid_ns, 1)
    assert holder_is_dead(dead, me)
    parent = ProcessIdentity("here", os.getppid(), me.boot_id, me.pid_ns, start_time(os.getppid()))
    assert not holder_is_dead(parent, me)  # alive
    if parent.start:  # Linux: the pid of a process that started at another time was reused
        assert holder_is_dead(ProcessIdentity(**{**_fields(parent), "start": parent.start + 1}), me)
    assert not holder_is_dead(ProcessIdentity(**{**_fields(dead), "hostname": "there"}), me)
    if me.boot_id:
        assert not holder_is_dead(ProcessIdentity(**{**_fields(dead), "boot_id": "other"}), me)
    assert not holder_is_dead(me, me)  # this very process (two runners, one id)
    if me.start:  # an earlier process with our pid (a restarted container)
        assert holder_is_dead(ProcessIdentity(**{**_fields(me), "start": me.start - 1}), me)


def _fields(p: ProcessIdentity) -> dict[str, object]:
    return {"hostname": p.hostname, "pid": p.pid, "boot_id": p.boot_id, "pid_ns": p.pid_ns,
            "start": p.start}  # fmt: skip


async def test_a_resumed_run_taken_over_counts_an_attempt_and_names_the_dead_worker(
    client: GatewayClient, settings: RedisSettings
) -> None:
    ids = ["resume-a", "resume-b"]
    lease = ("--lease-seconds", "1")
    procs = {
        w: spawn_worker("tests.agents.recovering:ask_then_sleep", settings, *lease, worker_id=w)
        for w in ids
    }
    try:
        await wait_online(client, "ask_then_sleep", count=2)
        sent = await client.send_message("ask_then_sleep", "takeover-s", "go")
        await status_of(client, "takeover-s", sent.message_id, "WAITING_USER")
        await client.resume("takeover-s", sent.message_id, "3")
        owner = await status_of(client, "takeover-s", sent.message_id, "RUNNING")
        procs[owner].kill()
        final = await client.wait_for_final("takeover-s", sent.message_id, timeout=30)
    finally:
        for proc in procs.values():
            stop_process(proc)
    assert final.data["status"] == "COMPLETED" and final.data["content"] == "slept 3"
    record = await client.registry.get_execution_by_message("takeover-s", sent.message_id)
    survivor = next(w for w in ids if w != owner)
    assert record and record.worker_id == survivor
    assert record.attempts == 2  # the first run, and the resumed run taken over
    assert isinstance(record.timeline, list)
    steps = [(e.status, e.worker_id, e.detail) for e in record.timeline]
    assert ("RUNNING", survivor, {"retry": 2, "takeover_from": owner}) in steps
    assert steps[-1][:2] == ("COMPLETED", survivor)
