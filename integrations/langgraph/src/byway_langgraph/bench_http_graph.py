"""The graph ``python -m byway_langgraph.bench_http`` measures, on both servers: one node
whose scripted chat model streams :data:`REPLY` a word (or a space) at a time.

``byway worker byway_langgraph.bench_http_graph:graph`` serves it for ``byway serve``;
``langgraph dev`` loads this very file by its path, so it imports only LangGraph and
LangChain (never ``byway``).
"""

from __future__ import annotations

import itertools
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph

__all__ = ["REPLY", "graph"]

#: the model's answer to every turn: 10 words, streamed as 19 chunks (words and spaces)
REPLY = "Byway streams this short reply one token at a time."

_model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=REPLY)]))


async def _answer(state: MessagesState) -> dict[str, Any]:
    return {"messages": [await _model.ainvoke(state["messages"])]}


def _build() -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("answer", _answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder.compile(name="agent")


#: the one-node graph, served as graph id (and agent type) ``agent``
graph = _build()
