"""Agents that ask and report the answer they got, for the structured-answer tests
(``byway worker tests.agents.answers:...``)."""

from __future__ import annotations

import json

from byway import AgentContext, AskAgentCommand, AskUserEvent, Command, ResumeCommand, agent


@agent("asker")
async def asker(command: Command, context: AgentContext) -> object:
    """Asks once; answers with what the Resume carried (its content and reply_data)."""
    if isinstance(command, AskAgentCommand):
        return await context.ask_user(
            AskUserEvent(prompt="approve the deploy?", schema={"type": "object"})
        )
    assert isinstance(command, ResumeCommand)
    got = {"content": command.content, "reply_data": command.reply_data}
    return {"content": json.dumps(got, sort_keys=True), "reply_data": got}
