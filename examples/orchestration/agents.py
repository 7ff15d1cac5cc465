"""A planner that fans out to researchers, then asks a person to approve the plan.

    byway worker examples.orchestration.agents:planner
    byway worker examples.orchestration.agents:researcher     # run several: they share the work

The planner never blocks a worker while it waits: each wait is recorded in Redis and the
reply (the researchers' results, then the person's answer) resumes it on any planner
worker, with what it kept in ``context.state``.
"""

from __future__ import annotations

import asyncio

from byway import AgentContext, AskAgentCommand, AskUserEvent, Command, agent


@agent("researcher")
async def researcher(command: Command, context: AgentContext) -> str:
    topic = str(command.content)
    await context.emit_chunk(f"looking into {topic}… ")
    await asyncio.sleep(0.2)
    return f"{topic}: three sources agree it matters"


@agent("planner")
async def planner(command: Command, context: AgentContext) -> object:
    if isinstance(command, AskAgentCommand):  # 1. fan out
        topics = [t.strip() for t in str(command.content).split(",") if t.strip()]
        context.state["topics"] = topics
        await context.emit_state(f"researching {len(topics)} topics")
        return await context.dispatch_group(
            [{"target_agent_type": "researcher", "content": t} for t in topics], timeout=60
        )
    if "findings" not in context.state:  # 2. the researchers are back: ask for approval
        findings = [r["content"] for r in command.reply_data or [] if r["status"] == "COMPLETED"]
        context.state["findings"] = findings
        plan = "; ".join(findings)
        return await context.ask_user(
            AskUserEvent(prompt=f"Proceed with this plan? {plan}", schema={"type": "string"})
        )
    answer = str(command.content).strip().lower()  # 3. the person answered
    if answer not in ("y", "yes"):
        return {"status": "CANCELLED", "content": "the plan was not approved"}
    return {"content": "approved plan: " + "; ".join(context.state["findings"])}
