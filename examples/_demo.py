"""What the example demos share: start worker processes, wait until they are online,
send one question, stream the run and answer the questions it asks (typed on a terminal;
otherwise the demo's default answer), then print the execution's states."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

from byway import EventType, GatewayClient, RedisSettings
from byway.app import worker_command, worker_env
from byway.cli import render_event


@contextlib.contextmanager
def serving(
    settings: RedisSettings, *targets: tuple[str, str]
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One worker process per (module:attr, agent type); stopped (SIGTERM) on exit."""
    env = worker_env(settings)  # the URL, password and all, stays out of their argv
    workers = [
        subprocess.Popen(
            worker_command(target, settings, "--agent-type", agent_type, "--drain-timeout", "5"),
            env=env,
        )
        for target, agent_type in targets
    ]
    try:
        yield workers
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()


async def _online(
    client: GatewayClient, agent_types: list[str], workers: list[subprocess.Popen[bytes]]
) -> None:
    for _ in range(300):
        found = [await client.registry.find_online_worker(t) for t in agent_types]
        if all(found):
            return
        for worker in workers:
            if worker.poll() is not None:
                raise SystemExit(f"a worker exited with code {worker.returncode}")
        await asyncio.sleep(0.1)
    raise SystemExit("the workers did not come online within 30s")


async def _answer(prompt: str, default: str) -> str:
    if sys.stdin.isatty():
        return (await asyncio.to_thread(input, "your answer: ")).strip() or default
    print(f"(not a terminal: answering {default!r})")
    return default


async def converse(
    settings: RedisSettings,
    workers: list[subprocess.Popen[bytes]],
    agent_types: list[str],
    question: str,
    *,
    default_answer: str = "yes",
) -> int:
    """Ask ``agent_types[0]`` and stream the run to the end; 0 if it completed."""
    async with GatewayClient(settings=settings) as client:
        await _online(client, agent_types, workers)
        session = f"demo-{uuid.uuid4().hex[:8]}"
        print(f"\n> {question}\n")
        sent = (await client.send_message(agent_types[0], session, question)).raise_for_status()
        status, after = "", "0"
        while not status:
            async for event in client.stream(
                session, after=after, until_message_id=sent.message_id
            ):
                after = event.id
                render_event(event)
                if event.data.get("kind") == "ask_user":  # asked by the root or any agent below
                    answer = await _answer(str(event.data.get("prompt")), default_answer)
                    await client.resume(session, event.message_id, answer)
                if (
                    event.event_type == EventType.FINAL_ANSWER
                    and event.message_id == sent.message_id
                ):
                    status = str(event.data.get("status"))
        record = await client.registry.get_execution_by_message(session, sent.message_id)
        if record:
            print(f"execution {record.execution_id}: {' → '.join(record.states)}")
        return 0 if status == "COMPLETED" else 1


def unique(agent_type: str) -> str:
    """An agent type of this run only: demos sharing one Redis never serve each other."""
    return f"{agent_type}-{uuid.uuid4().hex[:6]}"
