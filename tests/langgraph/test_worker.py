"""LangGraph graphs served by worker processes: real graphs, scripted fake models, no
network. Each scenario runs two worker processes, and where a run stops (an interrupt, a
call, a crash) the test makes it continue on the other one."""

from __future__ import annotations

import asyncio
import operator
import signal
import subprocess
import time
from pathlib import Path
from typing import Annotated, TypedDict

import pytest

from byway import EventType, ExecutionRecord, GatewayClient, RedisSettings
from tests.conftest import spawn_worker, stop_process, until_status, wait_online

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


async def _record(client: GatewayClient, session: str, message_id: str) -> ExecutionRecord:
    record = await client.registry.get_execution_by_message(session, message_id)
    assert record is not None
    return record


def _workers(
    settings: RedisSettings, target: str, *args: str, count: int = 2
) -> list[subprocess.Popen[bytes]]:
    return [spawn_worker(target, settings, *args) for _ in range(count)]


async def test_tokens_stream_in_order_and_the_final_answer_is_the_graphs(
    client: GatewayClient, settings: RedisSettings
) -> None:
    procs = _workers(settings, "tests.agents.graphs:chat_graph", "--agent-type", "chat")
    try:
        await wait_online(client, "chat", count=2)
        sent = await client.send_message("chat", "lg-stream", "tell me")
        events = [
            e
            async for e in client.stream(
                "lg-stream", until_message_id=sent.message_id, stop_at_end=True, idle_timeout=30
            )
        ]
    finally:
        for proc in procs:
            stop_process(proc)
    tokens = [e.data["content"] for e in events if e.event_type == EventType.ANSWER_DELTA]
    assert "".join(tokens) == "the quick brown fox jumps over the dog"
    assert len(tokens) > 1  # streamed, not one blob
    chunk = next(e for e in events if e.event_type == EventType.ANSWER_DELTA)
    assert chunk.data["metadata"]["node"] == "chat"
    nodes = [e.data for e in events if e.event_type == EventType.STEP_COMPLETE]
    assert any(d.get("state") == "node:chat" for d in nodes)
    [final] = [e for e in events if e.event_type == EventType.FINAL_ANSWER]
    assert final.message_id == sent.message_id
    assert final.data["status"] == "COMPLETED"
    assert final.data["content"] == "the quick brown fox jumps over the dog"


async def test_an_interrupt_on_one_worker_is_resumed_on_the_other(
    client: GatewayClient, settings: RedisSettings
) -> None:
    procs = {
        w: spawn_worker("tests.agents.lg_workers:pipeline", settings, worker_id=w)
        for w in ("lg-a", "lg-b")
    }
    try:
        await wait_online(client, "pipeline", count=2)
        sent = await client.send_message("pipeline", "lg-hitl", "the launch")
        asked = await until_status(client, "lg-hitl", sent.message_id, "WAITING_USER")
        assert stop_process(procs.pop(asked.worker_id)) == 0  # the asking worker is gone
        events = [e async for e in client.stream("lg-hitl", idle_timeout=0.5)]
        [question] = [e for e in events if e.data.get("kind") == "ask_user"]
        assert question.data["prompt"] == "publish the launch?"
        [pending] = question.data["metadata"]["interrupts"]
        assert pending["value"] == {"question": "publish the launch?"} and pending["id"]
        await client.resume("lg-hitl", sent.message_id, "yes")
        final = await client.wait_for_final("lg-hitl", sent.message_id, timeout=30)
        record = await _record(client, "lg-hitl", sent.message_id)
    finally:
        for proc in procs.values():
            stop_process(proc)
    assert final.data["content"] == "research, write, review:yes"
    assert record.worker_id != asked.worker_id


async def test_a_worker_killed_mid_run_is_continued_from_the_last_checkpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, client: GatewayClient, settings: RedisSettings
) -> None:
    log = tmp_path / "nodes.log"
    monkeypatch.setenv("BYWAY_TEST_GRAPH_LOG", str(log))
    procs = {
        w: spawn_worker(
            "tests.agents.lg_workers:pipeline", settings, "--lease-seconds", "1", worker_id=w
        )
        for w in ("kill-a", "kill-b")
    }
    try:
        await wait_online(client, "pipeline", count=2)
        sent = await client.send_message("pipeline", "lg-kill", "the report")
        for _ in range(400):
            if log.exists() and "start write" in log.read_text():
                break
            await asyncio.sleep(0.025)
        victim = (await _record(client, "lg-kill", sent.message_id)).worker_id
        procs[victim].send_signal(signal.SIGKILL)  # inside the long 'write' node
        await until_status(client, "lg-kill", sent.message_id, "WAITING_USER")
        await client.resume("lg-kill", sent.message_id, "ok")
        final = await client.wait_for_final("lg-kill", sent.message_id, timeout=30)
    finally:
        for proc in procs.values():
            stop_process(proc)
    assert final.data["content"] == "research, write, review:ok"
    lines = log.read_text().splitlines()
    assert lines.count("start research") == 1  # completed before the kill: not run again
    assert lines.count("start write") == 2  # interrupted: run again on the survivor
    assert lines.count("end write") == 1


async def test_a_react_agent_calls_another_agent_as_a_tool_without_holding_its_slot(
    client: GatewayClient, settings: RedisSettings
) -> None:
    # one react worker with one slot: the other runs can only start if the waiting run
    # gave its slot back
    react = _workers(
        settings,
        "tests.agents.graphs:react_graph",
        "--agent-type",
        "react",
        "--concurrency",
        "1",
        count=1,
    )
    translator = _workers(settings, "tests.agents.translator:translator", count=1)
    try:
        await wait_online(client, "react")
        await wait_online(client, "translator")
        first = await client.send_message("react", "lg-tool-1", "hello")
        await until_status(client, "lg-tool-1", first.message_id, "WAITING_AGENT")
        # while it waits for the translator, its worker serves others (concurrency 1)
        others = [await client.send_message("react", f"lg-tool-{i}", "hello") for i in (2, 3)]
        started = time.monotonic()
        finals = [
            await client.wait_for_final(f"lg-tool-{i}", o.message_id, timeout=30)
            for i, o in zip((2, 3), others, strict=True)
        ]
        answer = await client.wait_for_final("lg-tool-1", first.message_id, timeout=30)
        assert time.monotonic() - started < 30
    finally:
        for proc in [*react, *translator]:
            stop_process(proc)
    assert answer.data["content"] == "translation: bonjour"
    assert [f.data["content"] for f in finals] == ["translation: bonjour"] * 2
    record = await _record(client, "lg-tool-1", first.message_id)
    assert "WAITING_AGENT" in record.states and record.states[-1] == "COMPLETED"


async def test_cancel_during_a_long_node_ends_the_run_cancelled(
    client: GatewayClient, settings: RedisSettings
) -> None:
    procs = _workers(settings, "tests.agents.lg_workers:pipeline")
    try:
        await wait_online(client, "pipeline", count=2)
        sent = await client.send_message("pipeline", "lg-cancel", "the memo")
        await until_status(client, "lg-cancel", sent.message_id, "RUNNING")
        await asyncio.sleep(0.5)  # inside 'write' (3 s)
        cancelled_at = time.monotonic()
        await client.cancel_task(sent.message_id, "lg-cancel")
        final = await client.wait_for_final("lg-cancel", sent.message_id, timeout=20)
        took = time.monotonic() - cancelled_at
    finally:
        for proc in procs:
            stop_process(proc)
    assert final.data["status"] == "CANCELLED"
    assert took < 3  # the graph stops at once (well within the 5 s grace period)


async def test_token_usage_is_recorded_on_the_execution(
    client: GatewayClient, settings: RedisSettings
) -> None:
    from byway_langgraph import LangGraphWorker

    from tests.agents.graphs import counting_graph
    from tests.conftest import running

    async with running(LangGraphWorker(counting_graph, agent_type="counting"), settings):
        sent = await client.send_message("counting", "lg-usage", "count")
        final = await client.wait_for_final("lg-usage", sent.message_id, timeout=20)
    usage = {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}
    assert final.data["content"] == "two words"
    assert final.metadata["usage"] == usage
    record = await _record(client, "lg-usage", sent.message_id)
    assert record.result is not None and record.result["usage"] == usage


async def test_interrupt_strategy_cancels_the_run_and_starts_the_new_message_on_its_thread(
    client: GatewayClient, settings: RedisSettings
) -> None:
    """multitask_strategy='interrupt': the running graph is cancelled (its input already
    checkpointed) and the new message runs on the same thread, from that checkpoint."""
    from byway_langgraph import LangGraphWorker

    from tests.agents.graphs import slow_chat_graph
    from tests.conftest import running

    worker = LangGraphWorker(slow_chat_graph, agent_type="slowchat")
    async with running(worker, settings):
        first = await client.send_message("slowchat", "lg-multi", "first?")
        await until_status(client, "lg-multi", first.message_id, "RUNNING")
        await asyncio.sleep(0.3)
        second = await client.send_message(
            "slowchat", "lg-multi", "second?", multitask_strategy="interrupt"
        )
        assert second.disposition == "interrupt"
        cancelled = await client.wait_for_final("lg-multi", first.message_id, timeout=20)
        final = await client.wait_for_final("lg-multi", second.message_id, timeout=20)
    assert cancelled.data["status"] == "CANCELLED"
    assert final.data["status"] == "COMPLETED"
    assert final.data["content"] == "2 question(s), the last: second?"


async def test_a_graph_calling_a_graph_keeps_their_threads_apart(
    client: GatewayClient, settings: RedisSettings
) -> None:
    """The ReAct agent's tool is another LangGraph agent in the same session: each has its
    own thread, so the callee sees only its request and the caller gets its answer."""
    from byway_langgraph import LangGraphWorker, RedisCheckpointSaver

    from tests.agents.graphs import counting_graph, react_graph
    from tests.conftest import running

    async with (
        running(LangGraphWorker(react_graph, agent_type="react-lg"), settings),
        running(LangGraphWorker(counting_graph, agent_type="translator"), settings),
    ):
        sent = await client.send_message("react-lg", "lg-nested", "hello")
        final = await client.wait_for_final("lg-nested", sent.message_id, timeout=20)
    assert final.data["content"] == "translation: two words"
    saver = RedisCheckpointSaver(client.redis, namespace=settings.namespace)
    threads = {t.config["configurable"]["thread_id"] async for t in saver.alist(None)}
    callee = sorted(t for t in threads if t.startswith("lg-nested:translator:"))
    assert "lg-nested:react-lg" in threads and len(callee) == 1
    state = await saver.aget_tuple({"configurable": {"thread_id": callee[0]}})
    assert state is not None
    assert [m.content for m in state.checkpoint["channel_values"]["messages"]] == [
        "hello",
        "two words",
    ]


async def test_ask_user_tool_asks_the_user_and_returns_the_answer(
    client: GatewayClient, settings: RedisSettings
) -> None:
    from byway_langgraph import LangGraphWorker, ask_user_tool
    from langgraph.prebuilt import create_react_agent

    from tests.agents.graphs import ReactScript
    from tests.conftest import running

    graph = create_react_agent(ReactScript(tool="ask_user", arg="question"), [ask_user_tool()])
    async with running(LangGraphWorker(graph, agent_type="asker"), settings):
        sent = await client.send_message("asker", "lg-ask", "which city?")
        await until_status(client, "lg-ask", sent.message_id, "WAITING_USER")
        events = [e async for e in client.stream("lg-ask", idle_timeout=0.5)]
        [question] = [e for e in events if e.data.get("kind") == "ask_user"]
        assert question.data["prompt"] == "which city?"
        await client.resume("lg-ask", sent.message_id, "Porto")
        final = await client.wait_for_final("lg-ask", sent.message_id, timeout=20)
    assert final.data["content"] == "translation: Porto"


class _Answers(TypedDict):
    answers: Annotated[list[str], operator.add]


def _two_questions_graph(breakpoint: bool) -> object:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    State = _Answers

    def ask(name: str):  # type: ignore[no-untyped-def]
        def node(state: State) -> dict[str, list[str]]:
            answer = "-" if breakpoint else interrupt({"question": f"{name}?"})
            return {"answers": [f"{name}={answer}"]}

        return node

    builder = StateGraph(State, input_schema=State)
    builder.add_node("color", ask("color"))
    builder.add_node("size", ask("size"))
    builder.add_edge(START, "color")
    builder.add_edge(START, "size")  # both in one step: two interrupts at once
    builder.add_edge("color", END)
    builder.add_edge("size", END)
    return builder.compile(interrupt_before=["size"] if breakpoint else None)


def _answers_worker(agent_type: str, *, breakpoint: bool) -> object:
    from byway_langgraph import LangGraphWorker

    return LangGraphWorker(
        _two_questions_graph(breakpoint=breakpoint),
        agent_type=agent_type,
        input_mapper=lambda command, ctx: {"answers": []},
        output_mapper=lambda values: {"content": ", ".join(sorted(values["answers"]))},
    )


async def test_two_interrupts_at_once_are_answered_by_id(
    client: GatewayClient, settings: RedisSettings
) -> None:
    from tests.conftest import running

    async with running(_answers_worker("two-q", breakpoint=False), settings):  # type: ignore[arg-type]
        sent = await client.send_message("two-q", "lg-two", "go")
        await until_status(client, "lg-two", sent.message_id, "WAITING_USER")
        events = [e async for e in client.stream("lg-two", idle_timeout=0.5)]
        [question] = [e for e in events if e.data.get("kind") == "ask_user"]
        pending = {i["value"]["question"]: i["id"] for i in question.data["metadata"]["interrupts"]}
        assert set(pending) == {"color?", "size?"}
        answers = {pending["color?"]: "red", pending["size?"]: "L"}
        await client.resume("lg-two", sent.message_id, "answers", reply_data=answers)
        final = await client.wait_for_final("lg-two", sent.message_id, timeout=20)
    assert final.data["content"] == "color=red, size=L"


async def test_a_static_breakpoint_pauses_as_a_question_and_goes_on_when_answered(
    client: GatewayClient, settings: RedisSettings
) -> None:
    from tests.conftest import running

    async with running(_answers_worker("paused", breakpoint=True), settings):  # type: ignore[arg-type]
        sent = await client.send_message("paused", "lg-bp", "go")
        record = await until_status(client, "lg-bp", sent.message_id, "WAITING_USER")
        assert record.states[-1] == "WAITING_USER"  # paused, not COMPLETED
        await client.resume("lg-bp", sent.message_id, "continue")
        final = await client.wait_for_final("lg-bp", sent.message_id, timeout=20)
    assert final.data["status"] == "COMPLETED"
    assert final.data["content"] == "color=-, size=-"
