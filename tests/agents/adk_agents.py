"""Real ADK agents on a scripted model (no network), for the ADK adapter tests.

The model answers from the conversation it is given, never from a queue of its own, so
an invocation paused on one worker process and resumed on another gets the same
answers. It tells in words what it saw last (a function response's name and payload),
so the tests can check what reached the model.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncGenerator
from typing import Any

from byway_adk import agent_tool, idempotency_key
from google.adk.agents import LlmAgent
from google.adk.agents.callback_context import CallbackContext
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.tools import FunctionTool, LongRunningFunctionTool, ToolContext
from google.genai import types


def _said(request: LlmRequest) -> tuple[str, Any]:
    """('text', the user's words) or ('response', FunctionResponse) of the last turn."""
    part = request.contents[-1].parts[-1]
    if part.function_response is not None:
        return "response", part.function_response
    return "text", part.text or ""


def _args_of(request: LlmRequest, name: str) -> dict[str, Any]:
    """The arguments of the last call of ``name`` in the conversation (ADK sends the
    model no call ids of its own making)."""
    calls = [
        part.function_call
        for content in request.contents
        for part in content.parts or []
        if part.function_call is not None and part.function_call.name == name
    ]
    assert calls, f"no call of {name} in the conversation"
    return dict(calls[-1].args or {})


def _calling(name: str, args: dict[str, Any]) -> LlmResponse:
    call = types.FunctionCall(name=name, args=args)
    return LlmResponse(content=types.Content(role="model", parts=[types.Part(function_call=call)]))


class ScriptedLlm(BaseLlm):
    """Answers by rule: ``call <tool> <json args>`` in the user's words calls that tool;
    a function response is answered with ``<name> answered <payload>``, or, when its
    payload has ``then: "call <tool> <json args>"``, by calling that tool (and a call
    answered as interrupted by a worker's crash is made again); anything else
    gets ``<n> message(s) so far, the last: <words>``. Text streams word by word and
    reports token usage."""

    model: str = "scripted"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        kind, said = _said(llm_request)
        if kind == "text":
            if said.startswith("error"):
                yield LlmResponse(error_code="SAFETY", error_message="the scripted model refused")
                return
            call = re.match(r"call (\w+) (.*)$", said)
            if call:
                yield _calling(call[1], json.loads(call[2]))
                return
            users = [
                c
                for c in llm_request.contents
                if c.role == "user" and any(p.text for p in c.parts or [])
            ]
            text = f"{len(users)} message(s) so far, the last: {said}"
        elif isinstance(said.response, dict) and said.response.get("status") == "INTERRUPTED":
            yield _calling(said.name, _args_of(llm_request, said.name))  # try it again
            return
        elif isinstance(said.response, dict) and isinstance(said.response.get("then"), str):
            call = re.match(r"call (\w+) (.*)$", said.response["then"])
            assert call, f"then: expected 'call <tool> <json args>', got {said.response['then']!r}"
            yield _calling(call[1], json.loads(call[2]))
            return
        else:
            text = f"{said.name} answered {json.dumps(said.response, sort_keys=True)}"
        if stream:
            words = text.split(" ")
            for i, word in enumerate(words):
                piece = word if i == len(words) - 1 else word + " "
                yield LlmResponse(
                    content=types.Content(role="model", parts=[types.Part(text=piece)]),
                    partial=True,
                )
                await asyncio.sleep(0)
        yield LlmResponse(
            content=types.Content(role="model", parts=[types.Part(text=text)]),
            usage_metadata=types.GenerateContentResponseUsageMetadata(
                prompt_token_count=10,
                candidates_token_count=len(text.split()),
                total_token_count=10 + len(text.split()),
            ),
        )


def _count_turns(callback_context: CallbackContext) -> None:
    callback_context.state["turns"] = int(callback_context.state.get("turns", 0)) + 1


def ask_manager(amount: int) -> dict[str, Any]:
    """Ask a manager to approve spending ``amount``; the answer comes later."""
    return {"status": "pending", "amount": amount}


def refund(amount: int) -> dict[str, Any]:
    """Refund ``amount`` to the customer (asks for confirmation first)."""
    return {"refunded": amount}


async def slow_lookup(query: str) -> dict[str, Any]:
    """A lookup that takes a long time."""
    await asyncio.sleep(30)
    return {"found": query}


async def slow_step(step: str) -> dict[str, Any]:
    """A step that takes three seconds (a worker is killed inside it in the tests)."""
    _log(f"start {step}")
    await asyncio.sleep(3)
    _log(f"end {step}")
    return {"done": step}


async def slow_refund(amount: int, tool_context: ToolContext) -> dict[str, Any]:
    """Refund ``amount`` after a confirmation, slowly (a worker is killed inside it in the
    tests); logs its idempotency key, as a payment API would receive it."""
    _log(f"start refund {amount} {idempotency_key(tool_context)}")
    await asyncio.sleep(3)
    _log(f"end refund {amount} {idempotency_key(tool_context)}")
    return {"refunded": amount}


def _log(line: str) -> None:
    path = os.environ.get("BYWAY_TEST_ADK_LOG")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


#: streams its answer, counts turns in session state, keeps its last answer there
chat_agent = LlmAgent(
    name="chat",
    model=ScriptedLlm(),
    instruction="Answer briefly.",
    output_key="last_answer",
    before_agent_callback=_count_turns,
    tools=[FunctionTool(slow_step)],
)

#: a long-running approval tool, tools that need confirmation, and slow tools
approvals_agent = LlmAgent(
    name="approvals",
    model=ScriptedLlm(),
    instruction="Handle refunds and approvals.",
    tools=[
        LongRunningFunctionTool(ask_manager),
        FunctionTool(refund, require_confirmation=True),
        FunctionTool(slow_lookup),
        FunctionTool(slow_refund, require_confirmation=True),
        FunctionTool(slow_step),
    ],
)


def ask_customer(question: str) -> dict[str, Any]:
    """Ask the customer ``question``; the answer comes later."""
    return {"status": "asked"}


class _Specialist(ScriptedLlm):
    """A specialist that asks the customer before it answers anything."""

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        kind, said = _said(llm_request)
        if kind == "text":
            yield _calling("ask_customer", {"question": f"which dates for {said}?"})
            return
        async for response in super().generate_content_async(llm_request, stream):
            yield response


#: an ADK specialist that asks the user (a long-running tool) before it answers
specialist_agent = LlmAgent(
    name="specialist",
    model=_Specialist(),
    instruction="Book trips.",
    tools=[LongRunningFunctionTool(ask_customer)],
)

#: an ADK agent whose tool is another Byway agent (a LangGraph graph in the tests)
caller_agent = LlmAgent(
    name="caller",
    model=ScriptedLlm(),
    instruction="Ask the writer.",
    tools=[agent_tool("lg-chat", name="writer")],
)


def _supervisor() -> Any:
    from byway_langgraph import agent_tool as lg_agent_tool
    from langgraph.prebuilt import create_react_agent

    from tests.agents.graphs import ReactScript

    return create_react_agent(
        ReactScript(tool="specialist", prefix="supervisor: "),
        [lg_agent_tool("adk-specialist", name="specialist")],
    )


#: a LangGraph supervisor whose tool is the ADK specialist
supervisor_graph = _supervisor()
