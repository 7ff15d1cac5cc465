"""Agents for the recovery tests: a question whose answer starts slow work."""

from __future__ import annotations

import asyncio

from byway import AgentContext, Command, ResumeCommand, agent


@agent("ask_then_sleep")
async def ask_then_sleep(command: Command, context: AgentContext) -> object:
    """Asks how long to work; the resumed run sleeps that many seconds and says so."""
    if not isinstance(command, ResumeCommand):
        return await context.ask_user("how many seconds?")
    seconds = float(str(command.content or "1"))
    await asyncio.sleep(seconds)
    return f"slept {seconds:g}"
