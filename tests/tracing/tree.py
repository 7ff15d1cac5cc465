"""Runs the traced call tree with real worker processes: LangGraph supervisor → ADK
specialist (another process) → the user → both finish."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

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
        # a worker that traces to Phoenix imports Phoenix's package: slow on a busy machine
        await wait_online(client, "supervisor", timeout=240)
        await wait_online(client, "adk-specialist", timeout=240)
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


PLANNER = "tests.tracing.marked:planner_graph"
BOOKER = "tests.tracing.marked_adk:booker_agent"


async def run_marked(
    client: GatewayClient, settings: RedisSettings, env: dict[str, str]
) -> tuple[str, str]:
    """Runs one request through the planner of :mod:`tests.tracing.marked` (and the ADK
    booker it calls, in another worker process) with a fresh marker in the user's words;
    returns the marker and the session id. The workers are stopped (their spans flushed)
    before it returns."""
    from tests.tracing.marked import ANSWER

    marker = f"USER-MARK-{uuid.uuid4().hex[:8]}"
    session = f"trip-{uuid.uuid4().hex[:6]}"
    procs = [
        spawn_worker(PLANNER, settings, "--agent-type", "planner", env=env),
        spawn_worker(BOOKER, settings, "--agent-type", "booker", env=env),
    ]
    try:
        # a worker that traces to Phoenix imports Phoenix's package: slow on a busy machine
        await wait_online(client, "planner", timeout=240)
        await wait_online(client, "booker", timeout=240)
        sent = await client.send_message(
            "planner", session, f"two nights in Porto for {marker}", user_code="traveller-1"
        )
        final = await client.wait_for_final(session, sent.message_id, timeout=60)
        assert final.data["content"].startswith(f"{ANSWER} planned: booked: {ANSWER}")
    finally:
        for proc in procs:
            assert stop_process(proc) == 0, "a worker did not stop cleanly"
    return marker, session


def leaks(spans: list[dict[str, Any]], secret: str) -> list[str]:
    """Where ``secret`` is in ``spans`` (as a back end stored or received them): ``span
    name: attribute`` (or the event's, or another field), each with a bit of the value."""
    found = []
    for span in spans:
        where: dict[str, Any] = {f"attribute {k}": v for k, v in span["attributes"].items()}
        for i, event in enumerate(span.get("events") or []):
            where[f"event {i}"] = event
        where.update(
            {f"field {k}": v for k, v in span.items() if k not in ("attributes", "events")}
        )
        found += [
            f"{span['name']}: {key} = {json.dumps(value)[:120]}"
            for key, value in where.items()
            if secret in json.dumps(value)
        ]
    return found
