"""Orchestration across processes (SPEC §6): every scenario runs two worker processes per
agent type, and where an execution suspends, the test stops the process it suspended on
so that the resume has to land on the other one."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from collections.abc import Iterator

import pytest

from byway import (
    Event,
    EventType,
    ExecutionRecord,
    GatewayClient,
    RedisSettings,
    ResumeRefusedError,
)
from tests.conftest import spawn_worker, stop_process, wait_online

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


class Cluster:
    """Worker processes with known ids, two (or more) per agent type."""

    def __init__(self, settings: RedisSettings, client: GatewayClient) -> None:
        self.settings = settings
        self.client = client
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    async def start(self, agent: str, count: int = 2, *args: str) -> list[str]:
        ids = [f"{agent}-{i}-{len(self.procs)}" for i in range(count)]
        for worker_id in ids:
            self.procs[worker_id] = spawn_worker(
                f"tests.agents.flows:{agent}", self.settings, *args, worker_id=worker_id
            )
        await wait_online(self.client, agent, count=count)
        return ids

    def stop(self, worker_id: str) -> None:
        assert stop_process(self.procs[worker_id]) == 0

    def stop_all(self) -> None:
        for proc in self.procs.values():
            stop_process(proc)


@pytest.fixture
def cluster(settings: RedisSettings, client: GatewayClient) -> Iterator[Cluster]:
    c = Cluster(settings, client)
    try:
        yield c
    finally:
        c.stop_all()


async def record_of(client: GatewayClient, session: str, message_id: str) -> ExecutionRecord:
    record = await client.registry.get_execution_by_message(session, message_id)
    assert record is not None, message_id
    return record


async def until(
    client: GatewayClient, session: str, predicate, timeout: float = 20
) -> list[ExecutionRecord]:  # type: ignore[no-untyped-def]
    """Poll the session's execution records until ``predicate(records)`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        records = await client.registry.list_executions(session)
        if predicate(records):
            return records
        if loop.time() > deadline:
            raise AssertionError(
                f"timed out; records: {[(r.target_agent_type, r.status) for r in records]}"
            )
        await asyncio.sleep(0.05)


def by_type(records: list[ExecutionRecord], agent_type: str) -> ExecutionRecord:
    [record] = [r for r in records if r.target_agent_type == agent_type]
    return record


async def events_until_end(
    client: GatewayClient, session: str, message_id: str, timeout: float = 30
) -> list[Event]:
    async def read() -> list[Event]:
        return [e async for e in client.stream(session, until_message_id=message_id)]

    return await asyncio.wait_for(read(), timeout)


def steps(record: ExecutionRecord) -> list[tuple[str, str]]:
    assert isinstance(record.timeline, list)
    return [(e.status, e.worker_id) for e in record.timeline]


def suspended_and_resumed_on(record: ExecutionRecord) -> tuple[str, str]:
    s = steps(record)
    waiting = next(w for st, w in s if st.startswith("WAITING"))
    resumed = next(w for st, w in s if st == "RESUMED")
    return waiting, resumed


async def test_a_calls_b_calls_c_and_each_resumes_on_another_process(
    client: GatewayClient, cluster: Cluster
) -> None:
    for agent in ("chain_a", "chain_b", "chain_c"):
        await cluster.start(agent)
    sent = await client.send_message("chain_a", "chain", "2.0")
    # A and B suspend while C works for 2 s; stop the processes they suspended on
    records = await until(
        client, "chain", lambda rs: sum(r.status == "WAITING_AGENT" for r in rs) == 2
    )
    a, b = by_type(records, "chain_a"), by_type(records, "chain_b")
    cluster.stop(a.worker_id)
    cluster.stop(b.worker_id)
    events = await events_until_end(client, "chain", sent.message_id)

    finals = [e for e in events if e.event_type == EventType.FINAL_ANSWER]
    assert [e.message_id for e in finals] == [sent.message_id]
    assert finals[0].data["status"] == "COMPLETED"
    assert finals[0].data["content"] == "A(B(C))"
    reply = finals[0].data["reply_data"]
    assert reply["state"] == {"asked_on": a.worker_id, "question": "2.0"}  # state survived
    assert reply["resumed_on"] != a.worker_id
    assert [e.event_type for e in events].count(EventType.APP_STREAM_RESPONSE) == 1

    records = await client.registry.list_executions("chain")
    a, b, c = (by_type(records, t) for t in ("chain_a", "chain_b", "chain_c"))
    for record in (a, b):
        assert record.states == ["QUEUED", "RUNNING", "WAITING_AGENT", "RESUMED", "COMPLETED"]
        waited_on, resumed_on = suspended_and_resumed_on(record)
        assert waited_on != resumed_on  # the resume landed on the other process
    assert a.execution_id == sent.execution_id
    assert c.states == ["QUEUED", "RUNNING", "COMPLETED"]
    assert (b.parent_message_id, c.parent_message_id) == (a.message_id, b.message_id)


async def test_fan_out_to_five_children_two_failing_resumes_once_in_task_order(
    client: GatewayClient, cluster: Cluster
) -> None:
    await cluster.start("fan")
    await cluster.start("kid")
    parts = ["one", "fail-a", "three", "fail-b", "five"]
    sent = await client.send_message("fan", "fan-s", " ".join(parts))
    records = await until(client, "fan-s", lambda rs: any(r.status == "WAITING_AGENT" for r in rs))
    cluster.stop(by_type(records, "fan").worker_id)
    events = await events_until_end(client, "fan-s", sent.message_id)

    [final] = [e for e in events if e.event_type == EventType.FINAL_ANSWER]
    results = final.data["reply_data"]["results"]
    assert [r["status"] for r in results] == [
        "COMPLETED",
        "FAILED",
        "COMPLETED",
        "FAILED",
        "COMPLETED",
    ]
    assert [r["content"] for r in results if r["status"] == "COMPLETED"] == ["ONE", "THREE", "FIVE"]
    assert results[1]["error"] == {"type": "ValueError", "message": "kid cannot do fail-a"}
    assert final.data["reply_data"]["polled"] == results  # polling sees the same, in order
    kids = [
        r for r in await client.registry.list_executions("fan-s") if r.target_agent_type == "kid"
    ]
    assert sorted(r["message_id"] for r in results) == sorted(k.message_id for k in kids)
    fan_record = await record_of(client, "fan-s", sent.message_id)
    assert fan_record.states.count("RESUMED") == 1  # resumed exactly once
    waited_on, resumed_on = suspended_and_resumed_on(fan_record)
    assert waited_on != resumed_on


async def test_a_group_gathered_in_the_pass_that_dispatched_it_needs_no_resume(
    client: GatewayClient, cluster: Cluster
) -> None:
    await cluster.start("gather", count=1)
    await cluster.start("kid", count=1)
    sent = await client.send_message("gather", "gather-s", "one three five")
    events = await events_until_end(client, "gather-s", sent.message_id)

    [final] = [e for e in events if e.event_type == EventType.FINAL_ANSWER]
    assert final.data["content"] == "ONE THREE FIVE"  # task order, every child in
    assert final.data["reply_data"]["statuses"] == ["COMPLETED"] * 3
    record = await record_of(client, "gather-s", sent.message_id)
    assert "WAITING_AGENT" not in record.states and record.status == "COMPLETED"
    kids = [
        r for r in await client.registry.list_executions("gather-s") if r.target_agent_type == "kid"
    ]
    assert sorted(final.data["reply_data"]["keys"]) == sorted(k.message_id for k in kids)
    assert all(not k.source_agent_type for k in kids)  # nobody waits on their replies


async def test_a_question_deep_in_the_tree_is_answered_by_the_user(
    client: GatewayClient, cluster: Cluster
) -> None:
    for agent in ("chain_a", "chain_b", "chain_c"):
        await cluster.start(agent)
    sent = await client.send_message("chain_a", "ask-s", "ask:deploy to prod?")
    question: Event | None = None
    async for event in client.stream("ask-s"):
        if event.kind == "ask_user":
            question = event
            break
    assert question is not None and question.data["prompt"] == "deploy to prod?"
    records = await client.registry.list_executions("ask-s")
    c = by_type(records, "chain_c")
    assert question.message_id == c.message_id != sent.message_id  # tagged with the callee
    assert c.status == "WAITING_USER"
    assert {by_type(records, t).status for t in ("chain_a", "chain_b")} == {"WAITING_AGENT"}
    cluster.stop(c.worker_id)

    answered = await client.resume("ask-s", question.message_id, "yes")
    assert answered.success
    events = await events_until_end(client, "ask-s", sent.message_id, timeout=30)
    [final] = [e for e in events if e.event_type == EventType.FINAL_ANSWER]
    assert final.data["content"] == "A(B(C:yes))"
    records = await client.registry.list_executions("ask-s")
    c = by_type(records, "chain_c")
    assert c.states == ["QUEUED", "RUNNING", "WAITING_USER", "RESUMED", "COMPLETED"]
    waited_on, resumed_on = suspended_and_resumed_on(c)
    assert waited_on != resumed_on
    # a second answer to a question no longer open is refused, and changes nothing
    with pytest.raises(ResumeRefusedError, match="already finished with status COMPLETED"):
        await client.resume("ask-s", question.message_id, "again")
    await asyncio.sleep(0.5)
    assert (await record_of(client, "ask-s", c.message_id)).states == c.states


async def test_cancel_reaches_every_descendant(client: GatewayClient, cluster: Cluster) -> None:
    await cluster.start("boss")
    await cluster.start("busy_b")
    await cluster.start("helper_c", 2, "--concurrency", "1")
    # keep both helper processes busy so B's helper task stays queued
    blockers = [await client.send_message("helper_c", f"block-{i}", "block") for i in range(2)]
    await until(client, "block-0", lambda rs: rs and rs[0].status == "RUNNING")
    await until(client, "block-1", lambda rs: rs and rs[0].status == "RUNNING")

    sent = await client.send_message("boss", "cancel-s", "go")
    records = await until(
        client,
        "cancel-s",
        lambda rs: (
            any(r.target_agent_type == "busy_b" and r.status == "RUNNING" for r in rs)
            and any(r.target_agent_type == "helper_c" for r in rs)
        ),
    )
    assert by_type(records, "helper_c").status == "QUEUED"
    outcome = await client.cancel_task(sent.message_id, "cancel-s", reason="user pressed stop")
    assert outcome.count == 3 and outcome.message_ids[0] == sent.message_id

    events = await events_until_end(client, "cancel-s", sent.message_id, timeout=15)
    finals = [e for e in events if e.event_type == EventType.FINAL_ANSWER]
    assert len(finals) == 1 and finals[0].data["status"] == "CANCELLED"
    assert finals[0].data["error"]["message"] == "user pressed stop"
    records = await until(client, "cancel-s", lambda rs: all(r.status == "CANCELLED" for r in rs))
    b = by_type(records, "busy_b")
    assert "CANCELLING" in b.states  # B was running and was stopped by its worker

    for blocker in blockers:  # free the helpers: the cancelled queued task must not run
        await client.cancel_task(blocker.message_id, blocker.session_id)
    await asyncio.sleep(1.0)
    helper = by_type(await client.registry.list_executions("cancel-s"), "helper_c")
    assert "RUNNING" not in helper.states
    seen = [e async for e in client.stream("cancel-s", idle_timeout=0.3, block_ms=100)]
    assert not any("helper ran" in str(e.data.get("content")) for e in seen)


async def test_cancelling_a_queued_task_ends_it_before_it_starts(
    client: GatewayClient, cluster: Cluster
) -> None:
    await cluster.start("helper_c", 2, "--concurrency", "1")
    blockers = [await client.send_message("helper_c", f"q-block-{i}", "block") for i in range(2)]
    for blocker in blockers:
        await until(client, blocker.session_id, lambda rs: rs and rs[0].status == "RUNNING")
    queued = await client.send_message("helper_c", "queued-s", "never")
    outcome = await client.cancel_task(queued.message_id, "queued-s")
    assert outcome.message_ids == [queued.message_id]
    events = await events_until_end(client, "queued-s", queued.message_id, timeout=5)
    assert [e.event_type for e in events] == [EventType.FINAL_ANSWER, EventType.APP_STREAM_RESPONSE]
    assert events[0].data["status"] == "CANCELLED"
    for blocker in blockers:  # cancels reach a worker whose every slot is busy
        await client.cancel_task(blocker.message_id, blocker.session_id, cancel_mode="force")
    for blocker in blockers:
        await until(client, blocker.session_id, lambda rs: rs[0].status == "CANCELLED", timeout=5)
    await asyncio.sleep(0.5)  # the helpers are free now; the cancelled entry is delivered
    record = await record_of(client, "queued-s", queued.message_id)
    assert record.states == ["QUEUED", "CANCELLED"]


async def test_a_wait_with_a_deadline_resumes_with_a_timeout(
    client: GatewayClient, cluster: Cluster
) -> None:
    await cluster.start("waiter")
    await cluster.start("sleeper")
    sent = await client.send_message("waiter", "deadline-s", "go")
    events = await events_until_end(client, "deadline-s", sent.message_id, timeout=15)
    [final] = [e for e in events if e.event_type == EventType.FINAL_ANSWER]
    assert final.data["content"] == "waiter resumed with TIMEOUT"
    records = await until(
        client, "deadline-s", lambda rs: by_type(rs, "sleeper").status == "CANCELLED", timeout=10
    )
    waiter = by_type(records, "waiter")
    assert waiter.states == ["QUEUED", "RUNNING", "WAITING_AGENT", "RESUMED", "COMPLETED"]
    assert waiter.timeline[3].detail == {"by": "timeout"}  # type: ignore[union-attr]
    elapsed = waiter.timeline[3].timestamp - waiter.timeline[2].timestamp  # type: ignore[union-attr]
    assert 900 <= elapsed <= 5000


async def test_enqueue_runs_a_sessions_messages_one_after_another_in_order(
    client: GatewayClient, cluster: Cluster
) -> None:
    await cluster.start("serial")
    sent = [await client.send_message("serial", "serial-s", f"m{i}") for i in range(3)]
    assert [s.disposition for s in sent] == ["sent", "queued", "queued"]
    finals = []
    for s in sent:
        events = await events_until_end(client, "serial-s", s.message_id)
        finals += [
            e
            for e in events
            if e.event_type == EventType.FINAL_ANSWER and e.message_id == s.message_id
        ]
    assert [f.data["content"] for f in finals] == ["m0", "m1", "m2"]
    spans = [
        (f.data["reply_data"]["start"], f.data["reply_data"]["end"], f.data["reply_data"]["worker"])
        for f in finals
    ]
    # one after another: each started after the one before ended (clocks of one machine)
    for (_, end, _), (start, _, _) in itertools.pairwise(spans):
        assert start >= end - 0.01
    assert len({w for _, _, w in spans}) >= 1


async def test_reject_refuses_messages_while_the_session_is_busy(
    client: GatewayClient, cluster: Cluster
) -> None:
    await cluster.start("serial")
    results = [
        await client.send_message("serial", "reject-s", f"m{i}", multitask_strategy="reject")
        for i in range(3)
    ]
    assert [r.success for r in results] == [True, False, False]
    for refused in results[1:]:
        assert refused.error_code == "SESSION_BUSY"
        assert results[0].message_id in refused.error and "reject" in refused.error
    events = await events_until_end(client, "reject-s", results[0].message_id)
    assert [e.data["status"] for e in events if e.event_type == EventType.FINAL_ANSWER] == [
        "COMPLETED"
    ]
    again = await client.send_message("serial", "reject-s", "later", multitask_strategy="reject")
    assert again.success  # free again once the first ended


async def test_a_caller_is_resumed_with_cancelled_when_only_its_callee_is_cancelled(
    client: GatewayClient, cluster: Cluster
) -> None:
    await cluster.start("boss")
    await cluster.start("busy_b")
    await cluster.start("helper_c")
    sent = await client.send_message("boss", "callee-s", "go")
    records = await until(
        client,
        "callee-s",
        lambda rs: any(r.target_agent_type == "busy_b" and r.status == "RUNNING" for r in rs),
    )
    b = by_type(records, "busy_b")
    outcome = await client.cancel_task(b.message_id, "callee-s")
    assert outcome.message_ids[0] == b.message_id and sent.message_id not in outcome.message_ids
    events = await events_until_end(client, "callee-s", sent.message_id)
    [final] = [e for e in events if e.event_type == EventType.FINAL_ANSWER]
    assert final.data == {**final.data, "status": "COMPLETED", "content": "boss got CANCELLED"}


async def test_the_session_lock_lapses_with_a_dead_worker_and_the_queue_moves_on(
    client: GatewayClient, cluster: Cluster
) -> None:
    await cluster.start("chain_c", 2, "--lease-seconds", "1")
    first = await client.send_message("chain_c", "dead-s", "2")
    records = await until(client, "dead-s", lambda rs: rs and rs[0].status == "RUNNING")
    queued = await client.send_message("chain_c", "dead-s", "0")
    assert queued.disposition == "queued"
    refused = await client.send_message("chain_c", "dead-s", "0", multitask_strategy="reject")
    assert refused.error_code == "SESSION_BUSY"
    cluster.procs[records[0].worker_id].kill()  # SIGKILL: no drain, no release
    # the survivor takes the task over once the lease lapsed; the queue follows it
    done = await client.wait_for_final("dead-s", first.message_id, timeout=20)
    final = await client.wait_for_final("dead-s", queued.message_id, timeout=20)
    assert done.data["status"] == final.data["status"] == "COMPLETED"
    record = await record_of(client, "dead-s", first.message_id)
    assert record.attempts == 2


async def test_a_callee_resumed_by_its_own_timeout_still_answers_its_caller(
    client: GatewayClient, cluster: Cluster
) -> None:
    for agent in ("outer", "waiter", "sleeper"):
        await cluster.start(agent)
    sent = await client.send_message("outer", "nested-timeout", "go")
    events = await events_until_end(client, "nested-timeout", sent.message_id, timeout=20)
    [final] = [e for e in events if e.event_type == EventType.FINAL_ANSWER]
    assert final.data["content"] == "outer got: waiter resumed with TIMEOUT"
