"""Both prebuilt tool-calling agents (LangGraph's ``create_react_agent`` and LangChain v1's
``create_agent``) over a scripted model that, like real chat APIs, refuses a history with
unanswered tool calls, and a tool that can be slow (to be cancelled in)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from byway_langgraph import LangGraphWorker
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool

#: how long the tool works when asked for a "slow" job
SLOW_SECONDS = 30.0


class UnansweredToolCalls(ValueError):
    """What a chat API answers to a history with an open tool call (HTTP 400)."""


def check_history(messages: Sequence[BaseMessage]) -> None:
    """Raise like a real API if an assistant message's tool calls are not all answered by
    the tool messages right after it."""
    for index, message in enumerate(messages):
        if not isinstance(message, AIMessage) or not message.tool_calls:
            continue
        answered = set()
        for later in messages[index + 1 :]:
            if not isinstance(later, ToolMessage):
                break
            answered.add(later.tool_call_id)
        missing = [c["id"] for c in message.tool_calls if c["id"] not in answered]
        if missing:
            raise UnansweredToolCalls(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. Missing: {', '.join(map(str, missing))}"
            )


class StrictToolModel(BaseChatModel):
    """Calls the ``work`` tool with the user's message as the job, then answers with the
    tool's result; refuses an inconsistent history first."""

    @property
    def _llm_type(self) -> str:
        return "strict-tool-script"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        check_history(messages)
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(content=f"done: {last.content}")
        else:
            call = {
                "name": "work",
                "args": {"job": str(last.content)},
                "id": f"call-{len(messages)}",
            }
            reply = AIMessage(content="", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=reply)])


@tool
async def work(job: str) -> str:
    """Do a job; a "slow" one takes long."""
    if "slow" in job:
        await asyncio.sleep(SLOW_SECONDS)
    return f"{job} finished"


def react_agent() -> Any:
    from langgraph.prebuilt import create_react_agent

    return create_react_agent(StrictToolModel(), [work])


def v1_agent() -> Any:
    from langchain.agents import create_agent

    return create_agent(StrictToolModel(), [work])


#: for worker processes: ``byway worker tests.agents.lg_tool_agents:react``
react = LangGraphWorker(react_agent(), agent_type="strict-react")
#: for worker processes: ``byway worker tests.agents.lg_tool_agents:agent``
agent = LangGraphWorker(v1_agent(), agent_type="strict-agent")
