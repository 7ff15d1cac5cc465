"""The graphs the JavaScript SDK test drives, served alike by ``byway worker`` and by
``langgraph dev`` (``tests/langgraph_api/langgraph.json`` loads this file by its path,
so it imports only LangGraph and LangChain, never ``tests`` or ``byway``).

- ``chat``: one node whose scripted model streams :data:`CHAT_REPLY` word by word.
- ``approval``: drafts a plan, then ``interrupt()`` asks for a decision; the resumed
  value lands in the state's ``decision``.
"""

from __future__ import annotations

import itertools
from typing import Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt

#: what the chat graph's model answers to every turn, streamed one word (and space) a chunk
CHAT_REPLY = "Hello from a scripted model, one token at a time."

#: the value the approval graph's interrupt carries
QUESTION = {"question": "Approve the plan?", "plan": "ship it"}

_model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=CHAT_REPLY)]))


async def _respond(state: MessagesState) -> dict[str, Any]:
    return {"messages": [await _model.ainvoke(state["messages"])]}


def _chat() -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("respond", _respond)
    builder.add_edge(START, "respond")
    builder.add_edge("respond", END)
    return builder.compile(name="chat")


class Approval(TypedDict, total=False):
    request: str
    plan: str
    decision: Any


def _draft(state: Approval) -> dict[str, Any]:
    return {"plan": f"plan for {state.get('request', '')}"}


def _review(state: Approval) -> dict[str, Any]:
    return {"decision": interrupt(QUESTION)}


def _approval() -> Any:
    builder = StateGraph(Approval)
    builder.add_node("draft", _draft)
    builder.add_node("review", _review)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", END)
    return builder.compile(name="approval")


chat = _chat()
approval = _approval()
