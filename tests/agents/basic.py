"""Small agents used by the end-to-end tests."""

from __future__ import annotations

import asyncio
import os

from byway import AgentContext, Command, agent


@agent("echo")
async def echo(command: Command, context: AgentContext) -> dict[str, object]:
    """Streams the words of the message, then answers with them and the worker's pid."""
    text = str(getattr(command, "content", ""))
    for word in text.split():
        await context.emit_chunk(word + " ")
    return {"content": text, "reply_data": {"pid": os.getpid(), "worker_id": context.worker_id}}


@agent("slow")
async def slow(command: Command, context: AgentContext) -> str:
    """Sleeps for the number of seconds in the message, checking for cancellation."""
    seconds = float(str(getattr(command, "content", "1")))
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        await context.check_cancelled()
        await asyncio.sleep(0.02)
    return "slept"


@agent("crasher")
async def crasher(command: Command, context: AgentContext) -> str:
    """Kills its own process on "poison" (a task that keeps crashing its workers)."""
    if getattr(command, "content", "") == "poison":
        await asyncio.sleep(0.2)
        os._exit(13)
    return "fine"


@agent("chaos")
async def chaos(command: Command, context: AgentContext) -> str:
    """Sleeps for the seconds in the message; "poison" kills its process every time."""
    text = str(getattr(command, "content", "0"))
    if text == "poison":
        os._exit(13)
    await context.emit_chunk(f"working {text}s")
    await asyncio.sleep(float(text))
    return text


@agent("tick")
async def tick(command: Command, context: AgentContext) -> str:
    """Does nothing: the cost of the scheduler alone (memory and soak tests)."""
    return "ok"
