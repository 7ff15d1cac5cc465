# The README's AgentContext, Inter-Agent Calling, Scatter-Gather and User-in-the-Loop
# fragments as one agent: each wait is one pass of process_command (the README's first
# fragment lists them all in one body; see docs/by-framework.md for why Byway runs one
# wait per pass). Its callees run in another process (specialists.py).
from byway import AgentContext, ArtifactEvent, AskUserEvent, GatewayWorker, ResumeCommand, run_worker


class Orchestrator(GatewayWorker):
    def get_agent_types(self):
        return ["orchestrator"]

    async def process_command(self, command, context: AgentContext):
        if not isinstance(command, ResumeCommand):
            # Streaming output
            await context.emit_chunk("Step 1 complete\n")

            # State transitions
            await context.emit_state("analyzing")

            # Artifacts / structured data
            await context.emit_artifact(ArtifactEvent(url="https://example.com/output.json"))

            # Call another agent (with optional suspend-and-wait)
            reply = await context.call_agent(
                target_agent_type="translator",
                content="Hello world",
                wait_for_reply=True,
            )
            return reply

        if str(command.content).startswith("translated:"):
            # The translator's reply
            await context.emit_chunk(f"translator said: {command.content}\n")

            # Scatter-gather fan-out
            group = await context.dispatch_group([
                {"target_agent_type": "researcher", "content": "Find papers"},
                {"target_agent_type": "analyst",    "content": "Summarize findings"},
            ], wait_for_reply=True)

            results = await context.collect_group_results(group["task_group_id"])
            for r in results.values():
                await context.emit_chunk(f"{r['content']}\n")

            # Suspend and ask
            return await context.ask_user(
                AskUserEvent(prompt="What is the target deployment environment?")
            )

        # This is the user's reply
        await context.emit_chunk(f"You said: {command.content}")
        return {"status": "completed"}


if __name__ == "__main__":
    run_worker(Orchestrator, worker_id="worker-orchestrator")
