"""Two frameworks in one call tree: a LangGraph supervisor (a ReAct agent) whose tool is
an ADK booking specialist; the specialist asks the traveller for dates (an ADK
long-running tool) before it books. Serve them with

    byway worker examples.mixed_tree.agents:supervisor --agent-type supervisor
    byway worker examples.mixed_tree.agents:specialist --agent-type booking-specialist

While the traveller thinks, neither agent holds a worker: the supervisor waits for the
specialist, the specialist for the answer, both in Redis. Both models are scripted
stand-ins (no network, no key).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncGenerator
from typing import Any

from byway_langgraph import agent_tool as langgraph_agent_tool
from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.tools import LongRunningFunctionTool
from google.genai import types
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.prebuilt import create_react_agent

#: the specialist's agent type (the supervisor's tool calls it through Byway)
SPECIALIST = os.environ.get("BYWAY_EXAMPLE_SPECIALIST", "booking-specialist")


# -- the ADK specialist ------------------------------------------------------------------


def ask_traveller(question: str) -> dict[str, Any]:
    """Ask the traveller something; the answer comes later, as this call's response."""
    return {"status": "asked"}


class ScriptedSpecialistModel(BaseLlm):
    """Asks the traveller for dates, then books the trip for them."""

    model: str = "scripted-specialist"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        last = llm_request.contents[-1].parts[-1]
        request = " ".join(p.text or "" for c in llm_request.contents for p in c.parts or [])
        city = (re.findall(r"\b[A-Z][a-z]+\b", request) or ["Lisbon"])[-1]
        if last.function_response is None:
            call = types.FunctionCall(
                name="ask_traveller", args={"question": f"Which dates work for {city}?"}
            )
            yield LlmResponse(
                content=types.Content(role="model", parts=[types.Part(function_call=call)]),
                usage_metadata=_usage(30, 10),
            )
            return
        dates = (last.function_response.response or {}).get("result", "the first free dates")
        text = f"booked {city} for {dates}, 2 nights at Casa Azul (ref BK-{len(city) * 37:04d})"
        yield LlmResponse(
            content=types.Content(role="model", parts=[types.Part(text=text)]),
            usage_metadata=_usage(50, len(text.split())),
        )


def _usage(prompt: int, output: int) -> types.GenerateContentResponseUsageMetadata:
    return types.GenerateContentResponseUsageMetadata(
        prompt_token_count=prompt, candidates_token_count=output, total_token_count=prompt + output
    )


specialist = LlmAgent(
    name="booking_specialist",
    model=ScriptedSpecialistModel(),
    instruction="Ask the traveller for dates with ask_traveller, then book the trip.",
    tools=[LongRunningFunctionTool(ask_traveller)],
)


# -- the LangGraph supervisor -----------------------------------------------------------


class ScriptedSupervisorModel(BaseChatModel):
    """Hands the trip to the specialist, then sums up what it did."""

    @property
    def _llm_type(self) -> str:
        return "scripted-supervisor"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(content=f"All set: the specialist {last.content}.")
        else:
            call = {
                "name": "booking_specialist",
                "args": {"request": str(last.content)},
                "id": f"call-{len(messages)}",
            }
            reply = AIMessage(content="", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=reply)])


supervisor = create_react_agent(
    ScriptedSupervisorModel(),
    [langgraph_agent_tool(SPECIALIST, name="booking_specialist")],
    prompt="You plan trips. The booking specialist books them.",
)
