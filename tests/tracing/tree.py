"""Runs the traced call tree with real worker processes: LangGraph supervisor → ADK
specialist (another process) → the user → both finish."""

from __future__ import annotations

import subprocess

from byway import GatewayClient, RedisSettings
from tests.conftest import spawn_worker, stop_process, until_status, wait_online

SUPERVISOR = "tests.agents.traced:supervisor_graph"
SPECIALIST = "tests.agents.adk_agents:specialist_agent"


async def run_tree(
    client: GatewayClient,
    settings: RedisSettings,
    env: dict[str, str],
    session: str,
    user: str,
    *,
    specialist_env: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Runs one request through the tree; returns the root's and the question's message
    ids. The workers are stopped (gracefully: their spans are flushed) before it returns.
    ``specialist_env`` adds to ``env`` for the specialist's worker."""
    procs: list[subprocess.Popen[bytes]] = [
        spawn_worker(SUPERVISOR, settings, "--agent-type", "supervisor", env=env),
        spawn_worker(
            SPECIALIST,
            settings,
            "--agent-type",
            "adk-specialist",
            env={**env, **(specialist_env or {})},
        ),
    ]
    try:
        await wait_online(client, "supervisor", timeout=60)
        await wait_online(client, "adk-specialist", timeout=60)
        sent = await client.send_message("supervisor", session, "Lisbon", user_code=user)
        question = None
        async for event in client.stream(session, idle_timeout=30):
            if event.data.get("kind") == "ask_user":
                question = event
                break
        assert question is not None, "the specialist never asked"
        await until_status(client, session, question.message_id, "WAITING_USER")
        await client.resume(session, question.message_id, "May 3-5")
        final = await client.wait_for_final(session, sent.message_id, timeout=40)
        assert final.data["content"].startswith("supervisor: ask_customer answered")
    finally:
        for proc in procs:
            assert stop_process(proc) == 0, "a worker did not stop cleanly"
    return sent.message_id, question.message_id
