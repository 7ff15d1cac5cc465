"""``byway demo``: the embedded Redis, a worker process, one task, its answer streamed.

Works offline on a fresh machine: the agent is a scripted assistant that streams its
answer word by word and reports its steps, the way a model-backed agent would.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace

from byway.app import worker_command, worker_env
from byway.cli import render_event
from byway.client import GatewayClient
from byway.context import AgentContext
from byway.protocol import ArtifactEvent, Command, EventType
from byway.settings import RedisSettings
from byway.worker import agent

__all__ = ["assistant", "main"]

_ANSWER = (
    "Byway runs your agents as workers on Redis Streams. A run outlives the HTTP request "
    "that started it; its tokens land on the session's stream, so a client that "
    "disconnects picks up where it left off; a worker that dies hands its work to another; "
    "and more workers share the load as it grows."
)


@agent("assistant")
async def assistant(command: Command, context: AgentContext) -> str:
    """A scripted assistant: two steps, a streamed answer, an artifact."""
    await context.emit_state("reading the question")
    await asyncio.sleep(0.2)
    await context.emit_state("writing the answer")
    for word in _ANSWER.split(" "):
        await context.check_cancelled()
        await context.emit_chunk(word + " ")
        await asyncio.sleep(0.03)
    await context.emit_artifact(
        ArtifactEvent(url="https://example.invalid/byway-notes.md", metadata={"title": "notes"})
    )
    return _ANSWER


async def _wait_online(
    client: GatewayClient, agent_type: str, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 20
    while await client.registry.find_online_worker(agent_type) is None:
        if proc.poll() is not None:
            raise RuntimeError(f"the demo worker exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("the demo worker did not come online within 20s")
        await asyncio.sleep(0.1)


async def _run(
    args: argparse.Namespace,
    settings: RedisSettings,
    agent_type: str,
    worker: subprocess.Popen[bytes],
) -> int:
    async with GatewayClient(settings=settings) as client:
        await _wait_online(client, agent_type, worker)
        print(f"worker pid {worker.pid} serves {agent_type!r}", file=sys.stderr)
        session = f"demo-{uuid.uuid4().hex[:8]}"
        print(f"\n> {args.question}\n")
        sent = (await client.send_message(agent_type, session, args.question)).raise_for_status()
        status = ""
        async for event in client.stream(session, until_message_id=sent.message_id):
            render_event(event)
            if event.event_type == EventType.FINAL_ANSWER:
                status = str(event.data.get("status"))
        record = await client.registry.get_execution_by_message(session, sent.message_id)
        if record:
            print(f"execution {record.execution_id}: {' → '.join(record.states)}")
        return 0 if status == "COMPLETED" else 1


def main(args: argparse.Namespace, settings: RedisSettings) -> int:
    settings = replace(settings, url=settings.resolved_url())
    agent_type = f"assistant-{uuid.uuid4().hex[:6]}"
    print(f"redis: {settings.describe()}", file=sys.stderr)
    worker = subprocess.Popen(
        worker_command(
            "byway.demo:assistant", settings, "--agent-type", agent_type, "--drain-timeout", "5"
        ),
        env=worker_env(settings),
    )
    try:
        return asyncio.run(_run(args, settings, agent_type, worker))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
