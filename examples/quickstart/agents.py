"""A worker with one agent: it streams a reply word by word and reports a step.

Serve it (any number of times, on any machines that reach the same Redis):

    byway worker examples.quickstart.agents:greeter
"""

from __future__ import annotations

import asyncio

from byway import AgentContext, AskAgentCommand, Command, agent


@agent("greeter")
async def greeter(command: Command, context: AgentContext) -> str:
    name = command.content if isinstance(command, AskAgentCommand) else "there"
    await context.emit_state("thinking about a greeting")
    reply = f"Hello, {name}! This answer was streamed by worker {context.worker_id}."
    for word in reply.split(" "):
        await context.emit_chunk(word + " ")
        await asyncio.sleep(0.01)
    return reply
