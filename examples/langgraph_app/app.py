"""An ordinary LangChain v1 app: a travel agent (``create_agent`` with two tools) whose
bookings a person approves (``HumanInTheLoopMiddleware``). It knows nothing of Byway;
serve it with

    byway worker examples.langgraph_app.app:graph --agent-type travel

The model is a scripted stand-in (no network, no key) unless OPENAI_API_KEY is set and
langchain-openai is installed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool


@tool
def get_weather(city: str) -> str:
    """The weather forecast for a city."""
    return f"sunny and 24°C in {city} all week"


@tool
def book_trip(city: str) -> str:
    """Book a trip to a city. A person approves every booking before it is made."""
    return f"booked: 3 nights in {city}, confirmation TRV-{len(city) * 7919 % 10000:04d}"


class ScriptedTravelModel(BaseChatModel):
    """Plays a travel agent's model: weather first, then the booking, then a summary,
    streamed word by word like a real model."""

    @property
    def _llm_type(self) -> str:
        return "scripted-travel"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        city = next(
            (
                m.group(1)
                for m in (re.search(r"\bto ([A-Z][a-z]+)", str(x.content)) for x in messages)
                if m
            ),
            "Lisbon",
        )
        done = {m.name: m for m in messages if isinstance(m, ToolMessage)}
        if "get_weather" not in done:
            call = {"name": "get_weather", "args": {"city": city}, "id": "call-weather"}
            return AIMessage(content="", tool_calls=[call])
        if "book_trip" not in done:
            call = {"name": "book_trip", "args": {"city": city}, "id": "call-book"}
            return AIMessage(content="", tool_calls=[call])
        booking = str(done["book_trip"].content)
        if done["book_trip"].status == "error":  # the reviewer rejected it
            booking = f"not booked ({booking})"
        return AIMessage(
            content=f"The forecast for {city}: {done['get_weather'].content}. "
            f"{booking[:1].upper()}{booking[1:]}."
        )

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages)
        if reply.tool_calls:
            call = reply.tool_calls[0]
            chunk = AIMessageChunk(
                content="",
                tool_call_chunks=[
                    {
                        "name": call["name"],
                        "args": _json(call["args"]),
                        "id": call["id"],
                        "index": 0,
                    }
                ],
            )
            yield ChatGenerationChunk(message=chunk)
            return
        for word in re.split(r"(\s)", str(reply.content)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word))
            if run_manager:
                run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def _model() -> Any:
    if os.environ.get("OPENAI_API_KEY"):
        try:
            from langchain_openai import ChatOpenAI  # type: ignore[import-not-found]
        except ImportError:
            pass
        else:
            return ChatOpenAI(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    return ScriptedTravelModel()


graph = create_agent(
    _model(),
    [get_weather, book_trip],
    system_prompt="You are a travel agent. Check the weather, then book the trip.",
    middleware=[
        # every booking waits for a person: approve it, or reject it saying why
        HumanInTheLoopMiddleware(
            interrupt_on={"book_trip": {"allowed_decisions": ["approve", "reject"]}},
            description_prefix="A booking needs your approval",
        )
    ],
)
