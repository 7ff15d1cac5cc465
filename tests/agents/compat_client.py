"""Workers of by-framework's README (the import renamed), for the client compatibility tests."""

from __future__ import annotations

from byway import (
    AgentContext,
    BaiYingMessage,
    ByaiAgentContext,
    ByaiWorker,
    GatewayWorker,
    MessageContent,
)


class MyAgent(GatewayWorker):
    """The README's quick-start worker."""

    def get_agent_types(self):  # type: ignore[no-untyped-def]
        return ["my_agent"]

    async def process_command(self, command, context: AgentContext):  # type: ignore[no-untyped-def]
        await context.emit_chunk("Hello from your agent!")
        return {"status": "completed", "content": "Hello from your agent!"}


class ChatAgent(ByaiWorker):
    """Answers with what it decoded: the message's type, role, text and file names."""

    def get_agent_types(self) -> list[str]:
        return ["chat_agent"]

    async def process_command(self, command, context: ByaiAgentContext):  # type: ignore[no-untyped-def]
        message = command.content
        if not isinstance(message, BaiYingMessage):
            return {"reply_data": {"type": type(message).__name__}}
        body = message.content
        text = body.text if isinstance(body, MessageContent) else body
        files = [f.fileName for f in body.files] if isinstance(body, MessageContent) else []
        await context.emit_chunk(f"{message.role}: {text}")
        return {
            "content": text,
            "reply_data": {
                "type": type(message).__name__,
                "command": type(command).__name__,
                "context": type(context).__name__,
                "role": str(message.role),
                "files": files,
            },
        }
