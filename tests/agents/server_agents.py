"""Agents the ``byway serve`` tests drive over HTTP (``byway worker
tests.agents.server_agents:...``).

- ``streamer`` answers ``"N"`` or ``"N:SECONDS"`` with the tokens ``t0 t1 ... t(N-1)``,
  one ``answerDelta`` each, SECONDS apart (0.05 by default), checking for a cancel
  between them; its final answer is the whole text, with the sender's ``user_code`` and
  ``metadata["tenant"]`` as its reply_data.
- ``questioner`` asks the user, then answers ``you said: <answer>``.
- ``delegator`` calls ``streamer`` with its own content and answers with the reply: a
  call tree of two.
"""

from __future__ import annotations

import asyncio

from byway import AgentContext, AskAgentCommand, Command, ResumeCommand, agent


def tokens(count: int) -> list[str]:
    """What ``streamer`` streams for ``"count"``: its final answer is their join."""
    return [f"t{i} " for i in range(count)]


def _plan(text: str) -> tuple[int, float]:
    count, _, delay = text.partition(":")
    return int(count), float(delay or 0.05)


@agent("streamer")
async def streamer(command: Command, context: AgentContext) -> object:
    count, delay = _plan(str(getattr(command, "content", "3")))
    for token in tokens(count):
        await context.check_cancelled()
        await context.emit_chunk(token)
        await asyncio.sleep(delay)
    header = command.header
    # who the server said sent it
    seen = {"user_code": header.user_code, "tenant": header.metadata.get("tenant")}
    return {"content": "".join(tokens(count)), "reply_data": seen}


@agent("questioner")
async def questioner(command: Command, context: AgentContext) -> object:
    if isinstance(command, AskAgentCommand):
        return await context.ask_user(f"what about {command.content}?")
    assert isinstance(command, ResumeCommand)
    return f"you said: {command.content}"


@agent("delegator")
async def delegator(command: Command, context: AgentContext) -> object:
    if isinstance(command, AskAgentCommand):
        return await context.call_agent("streamer", str(command.content))
    assert isinstance(command, ResumeCommand)
    return f"streamer said: {command.content}"
