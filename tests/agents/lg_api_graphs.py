"""A compiled LangGraph graph, as a LangGraph team writes one, for the LangGraph Server API
tests (``byway worker tests.agents.lg_api_graphs:agent --agent-type agent``).

Its first human message picks the path: ``ask ...`` drafts a reply and asks the user
(``interrupt()``) before sending it; ``crawl`` runs a long node that writes a tick every
50 ms (for a minute); ``explode`` fails in the model node; anything else is answered by a
scripted chat model that streams word by word, then a second node counts the turn.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt

REPLY = "Hello from the agent, streamed word by word"
QUESTION = {"question": "send the draft?"}

model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=REPLY)]))


class ChatState(MessagesState):
    turns: int


def _first_words(state: ChatState) -> str:
    humans = [m for m in state["messages"] if getattr(m, "type", "") == "human"]
    text = humans[-1].content if humans else ""
    return text if isinstance(text, str) else ""


def pick(state: ChatState) -> str:
    text = _first_words(state)
    if text.startswith("ask"):
        return "draft"
    if text == "crawl":
        return "crawl"
    return "reply"


async def reply(state: ChatState) -> dict[str, Any]:
    if _first_words(state) == "explode":
        raise ValueError("asked to explode")
    message: BaseMessage = await model.ainvoke(state["messages"])
    return {"messages": [message]}


def tally(state: ChatState) -> dict[str, Any]:
    return {"turns": state.get("turns", 0) + 1}


async def draft(state: ChatState) -> dict[str, Any]:
    return {"messages": [await model.ainvoke(state["messages"])]}


def review(state: ChatState) -> dict[str, Any]:
    answer = interrupt(QUESTION)
    return {"messages": [AIMessage(content=f"reviewed: {answer}")]}


async def crawl(state: ChatState) -> dict[str, Any]:
    write = get_stream_writer()
    for tick in range(1200):
        write({"tick": tick})
        await asyncio.sleep(0.05)
    return {"messages": [AIMessage(content="crawled to the end")]}


builder = StateGraph(ChatState)
builder.add_node("reply", reply)
builder.add_node("tally", tally)
builder.add_node("draft", draft)
builder.add_node("review", review)
builder.add_node("crawl", crawl)
builder.add_conditional_edges(START, pick, ["reply", "draft", "crawl"])
builder.add_edge("reply", "tally")
builder.add_edge("tally", END)
builder.add_edge("draft", "review")
builder.add_edge("review", END)
builder.add_edge("crawl", END)

#: the graph the workers serve (no checkpointer: Byway's Redis one is used)
agent = builder.compile()
