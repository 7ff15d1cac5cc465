"""Agents for the plugin, history and tracing tests."""

from __future__ import annotations

from byway import AgentContext, AskAgentCommand, Command, ResumeCommand, agent


@agent("prompted")
async def prompted(command: Command, context: AgentContext) -> object:
    """Answers with the system prompt of its agent config (a plugin registers it);
    "ask" first asks the user, and answers after the reply."""
    if isinstance(command, AskAgentCommand) and command.content == "ask":
        return await context.ask_user("go on?")
    config = context.agent_config
    return {
        "content": config.prompts.get("system", "") if config else "<no config>",
        "reply_data": {"worker_id": context.worker_id},
    }


@agent("caller")
async def caller(command: Command, context: AgentContext) -> object:
    if isinstance(command, AskAgentCommand):
        return await context.call_agent("callee", "hello")
    assert isinstance(command, ResumeCommand)
    return f"callee said {command.content}"


@agent("callee")
async def callee(command: Command, context: AgentContext) -> str:
    return "hi"


@agent("remember")
async def remember(command: Command, context: AgentContext) -> object:
    """Answers with the history it was handed."""
    history = (
        command.extra_payload.get("history", []) if isinstance(command, AskAgentCommand) else []
    )
    return {
        "content": f"heard {command.content}",
        "reply_data": {"history": [[t["role"], t["content"]] for t in history]},
    }
