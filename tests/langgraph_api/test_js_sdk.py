"""LangGraph's JavaScript SDK (``@langchain/langgraph-sdk`` from npm, pinned in
``js/package-lock.json``) from a Node script against ``byway serve`` and two worker
processes: a run streamed token by token, and an ``interrupt()`` read from the thread's
state and answered with ``command: {resume}``.

The script is proved against LangGraph's own server too: set
``BYWAY_TEST_LANGGRAPH_DEV`` to a ``langgraph`` executable (``python -m
byway_langgraph.langgraph_dev`` makes one and prints its path) and the same assertions
run against ``langgraph dev`` serving the same graph file.

Skipped when ``node`` or ``npm`` is not on PATH; ``npm ci`` fills ``js/node_modules``
(gitignored) once per lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from byway_langgraph.langgraph_dev import running_langgraph_dev

from byway import GatewayClient, RedisSettings
from tests.agents.lg_js_graphs import CHAT_REPLY, QUESTION
from tests.conftest import spawn_server, spawn_worker, stop_process, wait_online

JS_DIR = Path(__file__).resolve().parent / "js"
SCRIPT = JS_DIR / "stream_and_resume.mjs"
GRAPHS = Path(__file__).resolve().parents[1] / "agents" / "lg_js_graphs.py"
LANGGRAPH_DEV = os.environ.get("BYWAY_TEST_LANGGRAPH_DEV", "")
RESUME = {"approved": True, "by": "a Node script"}
SCRIPT_TIMEOUT_S = 120

pytestmark = pytest.mark.skipif(
    not (shutil.which("node") and shutil.which("npm")),
    reason="needs node and npm on PATH: the test runs @langchain/langgraph-sdk in Node",
)


@pytest.fixture(scope="module")
def js_sdk() -> Path:
    """``npm ci`` into ``js/node_modules`` unless it already holds this lock file's
    packages (a stamp of the lock's hash); one process at a time (xdist)."""
    lock = JS_DIR / "package-lock.json"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp = JS_DIR / "node_modules" / ".byway-lock-sha256"
    guard = Path(tempfile.gettempdir()) / f"byway-js-sdk-{digest[:12]}.lock"
    with guard.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not (stamp.exists() and stamp.read_text() == digest):
            done = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=JS_DIR,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                pytest.fail(f"npm ci failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
            stamp.write_text(digest)
    return JS_DIR


def run_script(
    base_url: str, graph: str, *args: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the Node script; its JSON lines, and the summary it ends with."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run(
        ["node", str(SCRIPT), base_url, graph, *args],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        env=env,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr}\n{done.stdout[-3000:]}"
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert lines and "summary" in lines[-1], done.stdout[-3000:]
    return lines[:-1], lines[-1]["summary"]


def check_chat(lines: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Streamed a word (or a space) at a time as messages-tuple chunks, with the values
    and updates modes beside them, and the reply in the thread's final state."""
    assert summary["errors"] == []
    assert summary["tokens"] == re.split(r"(\s)", CHAT_REPLY)  # one chunk per token
    events = [line["event"] for line in lines if line.get("phase") == "run"]
    assert events[0] == "metadata"
    assert {"values", "messages", "updates"} <= set(events)
    assert events.index("messages") < len(events) - 1 - events[::-1].index("values")
    messages = summary["values"]["messages"]
    assert [(m["type"], m["content"]) for m in messages] == [
        ("human", "Hello"),
        ("ai", CHAT_REPLY),
    ]
    assert summary["interrupts"] == [] and summary["resumed"] is False
    assert summary["thread_status"] == "idle"


def check_approval(lines: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Paused on the interrupt (seen in the stream and in the thread's state), resumed
    with the script's value, which the graph's state then holds."""
    assert summary["errors"] == []
    assert [i["value"] for i in summary["interrupts"]] == [QUESTION]
    assert all(i.get("id") for i in summary["interrupts"])
    first_state = next(line for line in lines if line.get("phase") == "state")
    assert first_state["next"] == ["review"]
    streamed = [
        line["data"]["__interrupt__"]
        for line in lines
        if line.get("phase") == "run" and line["event"] == "updates"
        if "__interrupt__" in line["data"]
    ]
    assert [[i["value"] for i in chunk] for chunk in streamed] == [[QUESTION]]
    assert summary["resumed"] is True
    resumed_updates = [
        line["data"]
        for line in lines
        if line.get("phase") == "resume" and line["event"] == "updates"
    ]
    assert {"review": {"decision": RESUME}} in resumed_updates
    assert summary["values"] == {
        "request": "deploy",
        "plan": "plan for deploy",
        "decision": RESUME,
    }
    assert summary["next"] == [] and summary["thread_status"] == "idle"


CASES = {
    "chat": ((), check_chat),
    "approval": (('{"request": "deploy"}', json.dumps(RESUME)), check_approval),
}


@contextlib.asynccontextmanager
async def byway_serving(settings: RedisSettings, graph: str) -> AsyncIterator[str]:
    """``byway serve`` and two worker processes of ``graph``: the server's base URL."""
    workers = [
        spawn_worker(f"tests.agents.lg_js_graphs:{graph}", settings, "--agent-type", graph)
        for _ in range(2)
    ]
    server = None
    try:
        async with GatewayClient(settings=settings) as client:
            await wait_online(client, graph, 2)
        server, url = spawn_server(settings)
        yield url
    finally:
        for proc in [*workers, *([server] if server else [])]:
            stop_process(proc)


@pytest.mark.parametrize("graph", sorted(CASES))
async def test_js_sdk_against_byway_serve(
    graph: str, js_sdk: Path, settings: RedisSettings, redis: Any
) -> None:
    args, check = CASES[graph]
    async with byway_serving(settings, graph) as url:
        lines, summary = run_script(url, graph, *args)
    check(lines, summary)


@pytest.mark.skipif(
    not LANGGRAPH_DEV,
    reason="set BYWAY_TEST_LANGGRAPH_DEV=/path/to/langgraph to prove the script against "
    "langgraph dev (python -m byway_langgraph.langgraph_dev makes one and prints its path)",
)
@pytest.mark.parametrize("graph", sorted(CASES))
def test_js_sdk_against_langgraph_dev(graph: str, js_sdk: Path, tmp_path: Path) -> None:
    args, check = CASES[graph]
    graphs = {name: f"{GRAPHS}:{name}" for name in CASES}
    with running_langgraph_dev(LANGGRAPH_DEV, graphs, workdir=tmp_path, jobs=2) as server:
        lines, summary = run_script(server.url, graph, *args)
    check(lines, summary)
