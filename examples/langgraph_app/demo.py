"""``make demo``: the LangGraph travel agent of app.py served by a Byway worker process.

Starts the embedded Redis (or uses BYWAY_REDIS_URL) and one worker, asks for a trip,
streams the run — tool calls, tokens — and answers the agent's approval question (you
type it on a terminal; otherwise the demo approves). The run waits for the answer in
Redis, not in the worker.

    python -m examples.langgraph_app.demo ["Plan a trip to Porto"]
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid

from byway import EventType, GatewayClient, RedisSettings
from byway.app import worker_command
from byway.cli import render_event


async def _online(client: GatewayClient, agent_type: str, worker: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if await client.registry.find_online_worker(agent_type):
            return
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with code {worker.returncode}")
        await asyncio.sleep(0.1)
    raise SystemExit("the worker did not come online within 30s")


async def _run(
    settings: RedisSettings, agent_type: str, question: str, worker: subprocess.Popen[bytes]
) -> int:
    async with GatewayClient(settings=settings) as client:
        await _online(client, agent_type, worker)
        session = f"travel-{uuid.uuid4().hex[:8]}"
        print(f"\n> {question}\n")
        sent = (await client.send_message(agent_type, session, question)).raise_for_status()
        status, after = "", "0"
        while not status:
            async for event in client.stream(
                session, after=after, until_message_id=sent.message_id
            ):
                after = event.id
                render_event(event)
                if event.data.get("kind") == "ask_user":
                    answer = await _answer(str(event.data.get("prompt")))
                    await client.resume(session, sent.message_id, answer)
                if event.event_type == EventType.FINAL_ANSWER:
                    status = str(event.data.get("status"))
        record = await client.registry.get_execution_by_message(session, sent.message_id)
        if record:
            print(f"execution {record.execution_id}: {' → '.join(record.states)}")
        return 0 if status == "COMPLETED" else 1


async def _answer(prompt: str) -> str:
    if sys.stdin.isatty():
        return (await asyncio.to_thread(input, "your answer: ")).strip() or "yes"
    print("(not a terminal: approving)")
    return "yes"


def main() -> int:
    question = " ".join(sys.argv[1:]) or "Plan a trip to Porto"
    settings = RedisSettings.from_env()
    agent_type = f"travel-{uuid.uuid4().hex[:6]}"
    print(f"redis: {settings.describe()}", file=sys.stderr)
    worker = subprocess.Popen(
        worker_command(
            "examples.langgraph_app.app:graph",
            settings,
            "--agent-type",
            agent_type,
            "--drain-timeout",
            "5",
        )
    )
    try:
        return asyncio.run(_run(settings, agent_type, question, worker))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()


if __name__ == "__main__":
    sys.exit(main())
