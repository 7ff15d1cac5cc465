"""The ADK agent the planner of :mod:`tests.tracing.marked` calls: its scripted model
calls ``reserve`` with the request it was given, then answers from the tool's result
without quoting the request."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.tools import FunctionTool
from google.genai import types

from tests.tracing.marked import ANSWER


def reserve(request: str) -> dict[str, Any]:
    """Reserve what ``request`` asks for."""
    return {"status": f"{ANSWER} seat 4A"}


class BookerLlm(BaseLlm):
    model: str = "scripted-booker"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        part = llm_request.contents[-1].parts[-1]  # type: ignore[index]
        usage = types.GenerateContentResponseUsageMetadata(
            prompt_token_count=13, candidates_token_count=4, total_token_count=17
        )
        if part.function_response is None:
            call = types.FunctionCall(name="reserve", args={"request": part.text or ""})
            content = types.Content(role="model", parts=[types.Part(function_call=call)])
        else:
            status = (part.function_response.response or {}).get("status", "")
            content = types.Content(role="model", parts=[types.Part(text=f"booked: {status}")])
        yield LlmResponse(content=content, usage_metadata=usage)


#: ``byway worker tests.tracing.marked_adk:booker_agent``
booker_agent = LlmAgent(
    name="booker",
    model=BookerLlm(),
    instruction="Book what you are asked.",
    tools=[FunctionTool(reserve)],
)
