"""A plain Byway agent that a LangGraph agent calls as a tool."""

from __future__ import annotations

import asyncio

from byway import AgentContext, Command, agent


@agent("translator")
async def translator(command: Command, context: AgentContext) -> str:
    await asyncio.sleep(1.5)  # long enough for the caller's slot to serve someone else
    return "bonjour" if "hello" in str(getattr(command, "content", "")) else "?"
