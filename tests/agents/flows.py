"""Agents that call agents, fan out, ask the user and wait with deadlines.

Each reports the worker it ran on, so tests can see a resume land on another process.
"""

from __future__ import annotations

import asyncio

from byway import AgentContext, AskAgentCommand, Command, ResumeCommand, agent


def _where(context: AgentContext) -> str:
    return context.worker_id


@agent("chain_a")
async def chain_a(command: Command, context: AgentContext) -> object:
    if isinstance(command, AskAgentCommand):
        context.state["asked_on"] = _where(context)
        context.state["question"] = command.content
        return await context.call_agent("chain_b", command.content)
    assert isinstance(command, ResumeCommand)
    return {
        "content": f"A({command.content})",
        "reply_data": {
            "state": context.state,
            "resumed_on": _where(context),
            "callee_status": command.status,
        },
    }


@agent("chain_b")
async def chain_b(command: Command, context: AgentContext) -> object:
    if isinstance(command, AskAgentCommand):
        return await context.call_agent("chain_c", command.content)
    assert isinstance(command, ResumeCommand)
    if command.status != "COMPLETED":
        return {"status": command.status, "content": f"B saw {command.status}"}
    return f"B({command.content})"


@agent("chain_c")
async def chain_c(command: Command, context: AgentContext) -> object:
    if isinstance(command, ResumeCommand):  # the user's answer
        return f"C:{command.content}"
    text = str(command.content)
    if text.startswith("ask:"):
        return await context.ask_user(text[4:])
    await context.emit_chunk("C ran")
    seconds = float(text) if text.replace(".", "", 1).isdigit() else 0.0
    end = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < end:
        await context.check_cancelled()
        await asyncio.sleep(0.02)
    return "C"


@agent("fan")
async def fan(command: Command, context: AgentContext) -> object:
    if isinstance(command, AskAgentCommand):
        tasks = [
            {"target_agent_type": "kid", "content": part} for part in str(command.content).split()
        ]
        started = await context.dispatch_group(tasks)
        context.state["group"] = started["task_group_id"]
        return started
    results = command.reply_data
    assert isinstance(results, list)
    polled = await context.collect_group_results(context.state["group"], timeout=1)
    return {"content": "done", "reply_data": {"results": results, "polled": polled}}


@agent("gather")
async def gather(command: Command, context: AgentContext) -> object:
    """Dispatches with wait_for_reply and gathers in the same pass (by-framework's README)."""
    assert isinstance(command, AskAgentCommand), "a gathering task is never resumed"
    tasks = [{"target_agent_type": "kid", "content": p} for p in str(command.content).split()]
    group = await context.dispatch_group(tasks, wait_for_reply=True)
    results = await context.collect_group_results(group["task_group_id"])
    return {
        "content": " ".join(r["content"] for r in results.values()),
        "reply_data": {"keys": results.keys(), "statuses": [r["status"] for r in results]},
    }


@agent("kid")
async def kid(command: Command, context: AgentContext) -> str:
    text = str(command.content)
    await asyncio.sleep(0.05 * (len(text) % 3))  # finish out of order
    if text.startswith("fail"):
        raise ValueError(f"kid cannot do {text}")
    return text.upper()


@agent("waiter")
async def waiter(command: Command, context: AgentContext) -> object:
    if isinstance(command, AskAgentCommand):
        return await context.call_agent("sleeper", "zzz", timeout=1.0)
    assert isinstance(command, ResumeCommand)
    return {"content": f"waiter resumed with {command.status}", "reply_data": command.reply_data}


@agent("sleeper")
async def sleeper(command: Command, context: AgentContext) -> str:
    await context.emit_chunk("sleeping")
    for _ in range(3000):
        await context.check_cancelled()
        await asyncio.sleep(0.01)
    return "woke"


@agent("boss")
async def boss(command: Command, context: AgentContext) -> object:
    """Calls the worker agent and waits; the worker starts a helper it does not wait for."""
    if isinstance(command, AskAgentCommand):
        return await context.call_agent("busy_b", command.content)
    return f"boss got {command.status}"


@agent("busy_b")
async def busy_b(command: Command, context: AgentContext) -> str:
    await context.call_agent("helper_c", "help", wait_for_reply=False)
    await context.emit_chunk("B working")
    for _ in range(3000):
        await context.check_cancelled()
        await asyncio.sleep(0.01)
    return "B done"


@agent("helper_c")
async def helper_c(command: Command, context: AgentContext) -> str:
    await context.emit_chunk(f"helper ran: {command.content}")
    if command.content == "block":
        for _ in range(3000):
            await context.check_cancelled()
            await asyncio.sleep(0.01)
    return "helped"


@agent("serial")
async def serial(command: Command, context: AgentContext) -> object:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.sleep(0.3)
    return {
        "content": str(command.content),
        "reply_data": {"start": started, "end": loop.time(), "worker": context.worker_id},
    }


@agent("deep")
async def deep(command: Command, context: AgentContext) -> object:
    """Calls itself until the depth limit stops it."""
    if isinstance(command, AskAgentCommand):
        return await context.call_agent("deep", "again")
    return {"status": command.status, "content": str(command.content)}


@agent("outer")
async def outer(command: Command, context: AgentContext) -> object:
    """Calls the waiter (which times out on the sleeper) and reports what came back."""
    if isinstance(command, AskAgentCommand):
        return await context.call_agent("waiter", "go")
    return f"outer got: {command.content}"


@agent("sequencer")
async def sequencer(command: Command, context: AgentContext) -> object:
    """Calls the kid several times in a row, one call per resume."""
    done = context.state.get("done", 0)
    if isinstance(command, ResumeCommand):
        done += 1
        context.state["done"] = done
    if done < 5:
        return await context.call_agent("kid", f"call{done}")
    return {"content": f"{done} calls", "reply_data": {"depth": context.depth}}
