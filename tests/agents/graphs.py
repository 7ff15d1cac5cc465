"""Real LangGraph graphs with scripted fake models (no network), for the adapter tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt


class ScriptedModel(GenericFakeChatModel):
    """A fake chat model that streams its scripted answers word by word and accepts tools
    (``bind_tools`` keeps the script: the answers say which tool to call)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self


def _answers(*texts: str) -> Iterator[BaseMessage]:
    return iter([AIMessage(content=t) for t in texts])


def _chat(text: str) -> Any:
    model = ScriptedModel(messages=_answers(text))

    async def chat(state: MessagesState) -> dict[str, Any]:
        reply = await model.ainvoke(state["messages"])
        return {"messages": [reply]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    builder.add_edge("chat", END)
    return builder.compile()


#: one node, a streamed answer of eight words
chat_graph = _chat("the quick brown fox jumps over the dog")


class Steps(TypedDict):
    topic: str
    done: list[str]


def _progress_file() -> str:
    import os

    return os.environ.get("BYWAY_TEST_GRAPH_LOG", "")


def _log(line: str) -> None:
    path = _progress_file()
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


async def _step(name: str, seconds: float, state: Steps) -> dict[str, Any]:
    _log(f"start {name}")
    await asyncio.sleep(seconds)
    _log(f"end {name}")
    return {"done": [*state["done"], name]}


def _pipeline() -> Any:
    builder = StateGraph(Steps)

    async def research(state: Steps) -> dict[str, Any]:
        return await _step("research", 0.2, state)

    async def write(state: Steps) -> dict[str, Any]:
        return await _step("write", 3.0, state)  # the long node a worker dies in

    async def review(state: Steps) -> dict[str, Any]:
        answer = interrupt({"question": f"publish {state['topic']}?"})
        return {"done": [*state["done"], f"review:{answer}"]}

    builder.add_node("research", research)
    builder.add_node("write", write)
    builder.add_node("review", review)
    builder.add_edge(START, "research")
    builder.add_edge("research", "write")
    builder.add_edge("write", "review")
    builder.add_edge("review", END)
    return builder.compile()


#: research → write (slow) → review (asks the user); state is not message-based
pipeline_graph = _pipeline()


class ReactScript(BaseChatModel):
    """A fake model for a ReAct agent: asks its one tool, then answers with the result."""

    tool: str = "translator"
    arg: str = "request"
    prefix: str = "translation: "

    @property
    def _llm_type(self) -> str:
        return "react-script"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(content=f"{self.prefix}{last.content}")
        else:
            reply = AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": self.tool,
                        "args": {self.arg: str(last.content)},
                        "id": f"call-{len(messages)}",
                    }
                ],
            )
        return ChatResult(generations=[ChatGeneration(message=reply)])


def _react() -> Any:
    from byway_langgraph import agent_tool
    from langgraph.prebuilt import create_react_agent

    return create_react_agent(ReactScript(), [agent_tool("translator")])


#: a prebuilt ReAct agent whose only tool is another Byway agent
react_graph = _react()


class CountingModel(BaseChatModel):
    """Streams a fixed answer word by word and reports token usage on its last chunk."""

    @property
    def _llm_type(self) -> str:
        return "counting"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="two words"))])

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        from langchain_core.messages import AIMessageChunk

        words = ["two", " words"]
        for i, word in enumerate(words):
            usage = (
                {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}
                if i == len(words) - 1
                else None
            )
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word, usage_metadata=usage))
            if run_manager:
                run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk


def _counting() -> Any:
    model = CountingModel()

    async def chat(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    builder.add_edge("chat", END)
    return builder.compile()


#: one node whose model reports token usage
counting_graph = _counting()


def _slow_chat() -> Any:
    from langchain_core.messages import HumanMessage

    async def think(state: MessagesState) -> dict[str, Any]:
        await asyncio.sleep(2.0)
        questions = [m for m in state["messages"] if isinstance(m, HumanMessage)]
        text = f"{len(questions)} question(s), the last: {questions[-1].content}"
        return {"messages": [AIMessage(content=text)]}

    builder = StateGraph(MessagesState)
    builder.add_node("think", think)
    builder.add_edge(START, "think")
    builder.add_edge("think", END)
    return builder.compile()


#: one slow node that counts the questions in its thread
slow_chat_graph = _slow_chat()
