# Not from the README: a ByaiWorker for byai_example.py; it gets the BaiYingMessage back.
from byway import AgentContext, BaiYingMessage, ByaiWorker, run_worker


class ChatAgent(ByaiWorker):
    def get_agent_types(self):
        return ["chat_agent"]

    async def process_command(self, command, context: AgentContext):
        message = command.content
        assert isinstance(message, BaiYingMessage), type(message)
        await context.emit_chunk(f"{message.role}: {message.content}")
        return {"status": "completed", "content": f"hi, {message.role}"}


if __name__ == "__main__":
    run_worker(ChatAgent, worker_id="worker-chat")
