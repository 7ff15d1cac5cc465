"""An ordinary Google ADK agent: customer support that looks an order up and refunds it.
The refund tool asks for confirmation first (ADK's ``require_confirmation``), so a human
approves every refund. It knows nothing of Byway; serve it with

    byway worker examples.adk_agent.agent:root_agent --agent-type support

The model is a scripted stand-in (no network, no key) unless GOOGLE_API_KEY is set; then
it is Gemini (``BYWAY_EXAMPLE_GEMINI_MODEL``, default gemini-2.5-flash).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncGenerator
from typing import Any

from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.tools import FunctionTool
from google.genai import types

ORDERS = {"A1001": {"item": "rain jacket", "paid": 129.0}, "A1002": {"item": "boots", "paid": 89.5}}


def lookup_order(order_id: str) -> dict[str, Any]:
    """Look an order up by its id (like A1001)."""
    order = ORDERS.get(order_id.upper())
    return {"order_id": order_id.upper(), **order} if order else {"error": "no such order"}


def issue_refund(order_id: str, amount: float) -> dict[str, Any]:
    """Refund ``amount`` for an order. A human confirms every refund."""
    return {"refunded": amount, "order_id": order_id, "reference": f"RF-{order_id[-4:]}"}


class ScriptedSupportModel(BaseLlm):
    """Plays a support agent's model: look the order up, refund it, then say what
    happened, streamed word by word like a real model."""

    model: str = "scripted-support"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        responses = {
            p.function_response.name: p.function_response.response or {}
            for c in llm_request.contents
            for p in c.parts or []
            if p.function_response
        }
        asked = " ".join(p.text or "" for c in llm_request.contents for p in c.parts or [])
        order_id = (re.findall(r"\b[A-Z]\d{4}\b", asked) or ["A1001"])[-1]
        if "lookup_order" not in responses:
            yield _call("lookup_order", {"order_id": order_id})
            return
        order = responses["lookup_order"]
        if "issue_refund" not in responses and "paid" in order:
            yield _call("issue_refund", {"order_id": order_id, "amount": order["paid"]})
            return
        refund = responses.get("issue_refund", {})
        if "refunded" in refund:
            text = (
                f"Done: ${refund['refunded']:.2f} for the {order['item']} of order {order_id} "
                f"is on its way back to you (reference {refund['reference']})."
            )
        elif "paid" in order:
            text = f"The refund for order {order_id} was not approved, so nothing was refunded."
        else:
            text = f"I could not find order {order_id}."
        if stream:
            for word in re.split(r"(?<= )", text):
                yield LlmResponse(
                    content=types.Content(role="model", parts=[types.Part(text=word)]),
                    partial=True,
                )
        yield LlmResponse(
            content=types.Content(role="model", parts=[types.Part(text=text)]),
            usage_metadata=_usage(40, len(text.split())),
        )


def _call(name: str, args: dict[str, Any]) -> LlmResponse:
    call = types.FunctionCall(name=name, args=args)
    return LlmResponse(
        content=types.Content(role="model", parts=[types.Part(function_call=call)]),
        usage_metadata=_usage(12, 8),
    )


def _usage(prompt: int, output: int) -> types.GenerateContentResponseUsageMetadata:
    return types.GenerateContentResponseUsageMetadata(
        prompt_token_count=prompt, candidates_token_count=output, total_token_count=prompt + output
    )


def _model() -> Any:
    if os.environ.get("GOOGLE_API_KEY"):
        return os.environ.get("BYWAY_EXAMPLE_GEMINI_MODEL", "gemini-2.5-flash")
    return ScriptedSupportModel()


root_agent = LlmAgent(
    name="support",
    model=_model(),
    instruction=(
        "You are a support agent. Look the customer's order up with lookup_order, refund "
        "what they paid with issue_refund, then tell them what happened in one sentence."
    ),
    tools=[lookup_order, FunctionTool(issue_refund, require_confirmation=True)],
)
