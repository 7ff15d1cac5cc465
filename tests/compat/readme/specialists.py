# Not from the README: the agents orchestrator.py calls, in their own worker process.
from byway import AgentContext, GatewayWorker, run_worker


class Specialists(GatewayWorker):
    def get_agent_types(self):
        return ["translator", "researcher", "analyst"]

    async def process_command(self, command, context: AgentContext):
        agent = command.header.target_agent_type
        if agent == "translator":
            return {"status": "completed", "content": f"translated: {command.content}"}
        return {"status": "completed", "content": f"{agent} done: {command.content}"}


if __name__ == "__main__":
    run_worker(Specialists, worker_id="worker-specialists")
