"""What the user sees of a LangGraph run: questions as readable text (several at once, each
with its interrupt id; HumanInTheLoopMiddleware reviews batched and per call, with the
answer they expect), tool calls with their arguments (a streamed call once, when whole),
and no LangGraph-internal keys as node events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool

from byway import Event, GatewayClient, RedisSettings
from tests.conftest import running, until_status

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


@tool
def send_email(to: str, body: str) -> str:
    """Send an email."""
    return f"sent to {to}"


@tool
def delete_file(path: str) -> str:
    """Delete a file."""
    return f"deleted {path}"


class TwoCallsModel(BaseChatModel):
    """Asks for both tools at once, then reports the results. Streams its tool calls in
    fragments (the arguments split mid-JSON), as real models do."""

    @property
    def _llm_type(self) -> str:
        return "two-calls"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        results = [str(m.content) for m in messages if isinstance(m, ToolMessage)]
        if results:
            return AIMessage(content=" / ".join(results))
        calls = [
            {"name": "send_email", "args": {"to": "ana@example.com", "body": "hi"}, "id": "c1"},
            {"name": "delete_file", "args": {"path": "/tmp/report"}, "id": "c2"},
        ]
        return AIMessage(content="", tool_calls=calls)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages)
        if not reply.tool_calls:
            yield ChatGenerationChunk(message=AIMessageChunk(content=str(reply.content)))
            return
        for index, call in enumerate(reply.tool_calls):
            text = json.dumps(call["args"])
            pieces = [text[:5], text[5:12], text[12:]]
            for n, piece in enumerate(pieces):
                chunk = {
                    "name": call["name"] if n == 0 else None,
                    "id": call["id"] if n == 0 else None,
                    "args": piece,
                    "index": index,
                }
                message = AIMessageChunk(content="", tool_call_chunks=[chunk])
                if run_manager:
                    run_manager.on_llm_new_token("", chunk=ChatGenerationChunk(message=message))
                yield ChatGenerationChunk(message=message)


def _agent(mode: str) -> Any:
    from byway_langgraph import LangGraphWorker
    from langchain.agents import create_agent
    from langchain.agents.middleware import HumanInTheLoopMiddleware

    review = HumanInTheLoopMiddleware(
        interrupt_on={
            "send_email": True,
            "delete_file": {"allowed_decisions": ["approve", "reject"]},
        },
        interrupt_mode=mode,  # type: ignore[arg-type]
    )
    graph = create_agent(TwoCallsModel(), [send_email, delete_file], middleware=[review])
    return LangGraphWorker(graph, agent_type=f"mail-{mode}")


async def _events(client: GatewayClient, session: str) -> list[Event]:
    return [e async for e in client.stream(session, idle_timeout=0.5)]


def _asked(events: list[Event]) -> Event:
    [asked] = [e for e in events if e.data.get("kind") == "ask_user"]
    return asked


async def test_a_batched_review_reads_as_text_and_a_word_answers_every_call(
    client: GatewayClient, settings: RedisSettings
) -> None:
    async with running(_agent("batched"), settings):  # type: ignore[arg-type]
        sent = await client.send_message("mail-batched", "q-batched", "tidy up")
        await until_status(client, "q-batched", sent.message_id, "WAITING_USER")
        events = await _events(client, "q-batched")
        await client.resume("q-batched", sent.message_id, "approve")
        final = await client.wait_for_final("q-batched", sent.message_id, timeout=20)
    asked = _asked(events)
    prompt = asked.data["prompt"]
    assert prompt == (
        "1. Tool execution requires approval\n\nTool: send_email\n"
        'Args: {"to": "ana@example.com", "body": "hi"}\n'
        "Decisions: approve, edit, reject, respond\n\n"
        "2. Tool execution requires approval\n\nTool: delete_file\n"
        'Args: {"path": "/tmp/report"}\nDecisions: approve, reject'
    )
    [pending] = asked.data["metadata"]["interrupts"]
    assert pending["prompt"] == prompt
    assert pending["expects"] == (
        '{"decisions": [{"type": "approve"} | {"type": "edit", "edited_action": '
        '{"name": "send_email", "args": {"to": "ana@example.com", "body": "hi"}}} | '
        '{"type": "reject", "message": "..."} | {"type": "respond", "message": "..."}, '
        '{"type": "approve"} | {"type": "reject", "message": "..."}]}'
    )
    assert [a["name"] for a in pending["value"]["action_requests"]] == [
        "send_email",
        "delete_file",
    ]
    # the streamed calls: one event, with both calls' arguments, not one per fragment
    calls = [e.data["tool_calls"] for e in events if e.data.get("tool_calls")]
    assert calls == [
        [
            {"id": "c1", "name": "send_email", "args": {"to": "ana@example.com", "body": "hi"}},
            {"id": "c2", "name": "delete_file", "args": {"path": "/tmp/report"}},
        ]
    ]
    assert final.data["status"] == "COMPLETED", final.data
    assert final.data["content"] == "sent to ana@example.com / deleted /tmp/report"


async def test_per_call_reviews_are_asked_together_each_with_its_id(
    client: GatewayClient, settings: RedisSettings
) -> None:
    async with running(_agent("per_call"), settings):  # type: ignore[arg-type]
        sent = await client.send_message("mail-per_call", "q-per-call", "tidy up")
        await until_status(client, "q-per-call", sent.message_id, "WAITING_USER")
        events = await _events(client, "q-per-call")
        asked = _asked(events)
        pending = {q["value"]["name"]: q for q in asked.data["metadata"]["interrupts"]}
        answers = {
            pending["send_email"]["id"]: {"type": "approve"},
            pending["delete_file"]["id"]: {"type": "reject", "message": "keep it"},
        }
        await client.resume("q-per-call", sent.message_id, answers)
        final = await client.wait_for_final("q-per-call", sent.message_id, timeout=20)
    delete = pending["delete_file"]
    assert delete["prompt"] == (
        "Tool execution requires approval\n\nTool: delete_file\n"
        'Args: {"path": "/tmp/report"}\nDecisions: approve, reject'
    )
    assert delete["expects"] == '{"type": "approve"} | {"type": "reject", "message": "..."}'
    prompt = asked.data["prompt"]
    for q in pending.values():
        assert f"[{q['id']}] {q['prompt']}" in prompt
    assert final.data["status"] == "COMPLETED", final.data
    assert final.data["content"] == (
        "sent to ana@example.com / User rejected the tool call for `delete_file` "
        "with reason: keep it"
    )


class _Topic(TypedDict):
    topic: str
    out: str


async def test_a_cached_node_reports_no_metadata_node(
    client: GatewayClient, settings: RedisSettings
) -> None:
    from byway_langgraph import LangGraphWorker
    from langgraph.cache.memory import InMemoryCache
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import CachePolicy

    def shout(state: _Topic) -> dict[str, str]:
        return {"out": state["topic"].upper()}

    builder = StateGraph(_Topic)
    builder.add_node("shout", shout, cache_policy=CachePolicy())
    builder.add_edge(START, "shout")
    builder.add_edge("shout", END)
    worker = LangGraphWorker(
        builder.compile(cache=InMemoryCache()),
        agent_type="cached",
        input_mapper=lambda command, ctx: {"topic": str(command.content), "out": ""},
        output_mapper=lambda values: {"content": values["out"]},
    )
    async with running(worker, settings):
        for session in ("cache-1", "cache-2"):  # the second run is served from the cache
            sent = await client.send_message("cached", session, "hi")
            final = await client.wait_for_final(session, sent.message_id, timeout=20)
            assert final.data["content"] == "HI"
        events = await _events(client, "cache-2")
    states = [e.data.get("state") for e in events if e.data.get("kind") == "state"]
    assert "node:shout" in states
    assert not [s for s in states if s and s.startswith("node:__")]


def test_a_tool_call_with_huge_arguments_is_announced_cut_not_failing_the_run() -> None:
    """A model's call with megabytes of arguments (a file's content) is announced with
    its arguments cut: a whole one would be over BYWAY_MAX_EVENT_BYTES and fail the run."""
    from byway_langgraph._tool_calls import ToolCallAnnouncer
    from langchain_core.messages import AIMessage

    from byway import StreamChunkEvent
    from byway.events import chunk_data
    from byway.limits import Limits
    from byway.protocol import encode_event

    call = {"name": "write_file", "args": {"content": "x" * 2_000_000}, "id": "c1"}
    calls = ToolCallAnnouncer().on_message(AIMessage(content="", tool_calls=[call]))
    assert [c["id"] for c in calls] == ["c1"] and calls[0].get("args_cut") is True
    small = ToolCallAnnouncer().on_message(
        AIMessage(content="", tool_calls=[{"name": "t", "args": {"a": 1}, "id": "c2"}])
    )
    assert small == [{"id": "c2", "name": "t", "args": {"a": 1}}]
    payload = encode_event(
        trace_id="t",
        session_id="s",
        event_type="answerDelta",
        source_agent_type="a",
        message_id="m",
        parent_message_id="",
        data=chunk_data(StreamChunkEvent(tool_calls=calls)),
    )
    assert len(payload) < Limits().max_event_bytes
