# Not from the README: a "my_agent" that works until it is cancelled, for client_example.py.
import asyncio

from byway import AgentContext, GatewayWorker, run_worker


class SlowAgent(GatewayWorker):
    def get_agent_types(self):
        return ["my_agent"]

    async def process_command(self, command, context: AgentContext):
        await context.emit_chunk("working")
        for _ in range(600):
            await asyncio.sleep(0.1)
            await context.check_cancelled()
        return {"status": "completed", "content": "never cancelled"}


if __name__ == "__main__":
    run_worker(SlowAgent, worker_id="worker-slow")
