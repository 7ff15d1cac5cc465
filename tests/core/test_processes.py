"""Several processes: workers that share the load, the CLI, SIGTERM drain."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections import Counter

import pytest

from byway import Event, EventType, GatewayClient, RedisSettings
from tests.conftest import run_cli, spawn_worker, stop_process, wait_online

pytestmark = pytest.mark.redis


async def test_two_worker_processes_share_the_load_and_events_arrive_once_in_order(
    client: GatewayClient, settings: RedisSettings
) -> None:
    workers = [
        spawn_worker("tests.agents.basic:echo", settings, "--concurrency", "2") for _ in range(2)
    ]
    try:
        await wait_online(client, "echo", count=2)
        tasks = 40
        texts = {f"sess-{i}": " ".join(f"t{i}w{j}" for j in range(5)) for i in range(tasks)}
        sent = {s: await client.send_message("echo", s, text) for s, text in texts.items()}

        async def read(session: str) -> list[Event]:
            return [
                e async for e in client.stream(session, until_message_id=sent[session].message_id)
            ]

        streams = await asyncio.wait_for(asyncio.gather(*(read(s) for s in texts)), 60)
    finally:
        codes = [stop_process(w) for w in workers]
    pids = Counter()
    for (session, text), events in zip(texts.items(), streams, strict=True):
        chunks = [e.data["content"] for e in events if e.event_type == EventType.ANSWER_DELTA]
        assert chunks == [w + " " for w in text.split()], session
        kinds = Counter(e.event_type for e in events)
        assert kinds[EventType.FINAL_ANSWER] == 1 and kinds[EventType.APP_STREAM_RESPONSE] == 1
        assert len({e.id for e in events}) == len(events)
        final = next(e for e in events if e.event_type == EventType.FINAL_ANSWER)
        pids[final.data["reply_data"]["pid"]] += 1
    assert set(pids) == {w.pid for w in workers}, pids  # both processes took work
    assert codes == [0, 0]  # SIGTERM drained and exited cleanly


async def test_sigterm_lets_a_running_task_finish(
    client: GatewayClient, settings: RedisSettings
) -> None:
    worker = spawn_worker("tests.agents.basic:slow", settings)
    try:
        await wait_online(client, "slow")
        sent = await client.send_message("slow", "drain", "1.0")
        for _ in range(100):
            record = await client.registry.get_execution_by_message("drain", sent.message_id)
            if record and record.status == "RUNNING":
                break
            await asyncio.sleep(0.02)
        worker.send_signal(signal.SIGTERM)
        final = await client.wait_for_final("drain", sent.message_id, timeout=10)
        assert worker.wait(timeout=10) == 0
    finally:
        stop_process(worker)
    assert final.data["status"] == "COMPLETED"
    assert await client.registry.list_workers() == []  # left the registry on the way out


async def test_cli_send_follow_status_and_stream(
    client: GatewayClient, settings: RedisSettings
) -> None:
    worker = spawn_worker("tests.agents.basic:echo", settings, worker_id="cli-worker")
    try:
        await wait_online(client, "echo")
        status = run_cli(settings, "status", "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert [w["worker_id"] for w in report["workers"]] == ["cli-worker"]
        assert report["agent_types"][0]["agent_type"] == "echo"

        sent = run_cli(
            settings, "send", "echo", "alpha beta", "--session", "cli-s", "--follow", "--json"
        )
        assert sent.returncode == 0, sent.stderr
        lines = [json.loads(line) for line in sent.stdout.splitlines()]
        assert [line["event_type"] for line in lines] == [
            "answerDelta",
            "answerDelta",
            "finalAnswer",
            "appStreamResponse",
        ]
        assert lines[2]["data"]["content"] == "alpha beta"

        human = run_cli(settings, "send", "echo", "gamma", "--session", "cli-s", "--follow")
        assert human.returncode == 0 and "gamma" in human.stdout and "COMPLETED" in human.stdout

        replay = run_cli(settings, "stream", "cli-s", "--idle-timeout", "0.5", "--json")
        assert replay.returncode == 0
        assert len(replay.stdout.splitlines()) == 4 + 3  # both tasks, from the start
    finally:
        stop_process(worker)
    refused = run_cli(settings, "send", "nobody", "hi")
    assert refused.returncode == 2 and "no online worker" in refused.stderr


def test_cli_help_and_bad_targets() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "byway", "worker", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0 and "--concurrency" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "byway", "worker", "no_colon_here"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "module:attribute" in bad.stderr


async def test_cli_resume_answers_a_question_and_cancel_stops_a_task(
    client: GatewayClient, settings: RedisSettings
) -> None:
    worker = spawn_worker("tests.agents.flows:chain_c", settings)
    try:
        await wait_online(client, "chain_c")
        asked = await client.send_message("chain_c", "cli-ask", "ask:which region?")
        async for event in client.stream("cli-ask"):
            if event.kind == "ask_user":
                break
        answered = run_cli(settings, "resume", "cli-ask", asked.message_id, "eu-west")
        assert answered.returncode == 0, answered.stderr
        final = await client.wait_for_final("cli-ask", asked.message_id, timeout=10)
        assert final.data["content"] == "C:eu-west"

        slow = await client.send_message("chain_c", "cli-cancel", "30")
        for _ in range(100):
            record = await client.registry.get_execution("cli-cancel", slow.execution_id)
            if record and record.status == "RUNNING":
                break
            await asyncio.sleep(0.05)
        cancelled = run_cli(settings, "cancel", "cli-cancel", "--reason", "enough")
        assert cancelled.returncode == 0, cancelled.stderr
        assert json.loads(cancelled.stdout) == {"cancelled": [slow.message_id]}
        final = await client.wait_for_final("cli-cancel", slow.message_id, timeout=10)
        assert final.data["status"] == "CANCELLED" and final.data["error"]["message"] == "enough"
    finally:
        stop_process(worker)


async def test_cli_dlq_lists_and_replays_dead_letters(
    client: GatewayClient, settings: RedisSettings
) -> None:
    from byway import AskAgentCommand, MessageHeader
    from byway.protocol import encode_command

    keys = settings.keys
    worker = spawn_worker("tests.agents.basic:echo", settings)
    try:
        await wait_online(client, "echo")
        await client.redis.xadd(keys.agent_stream("echo"), {"data": b"{broken"})
        command = AskAgentCommand(
            header=MessageHeader(
                message_id="msg-dead", session_id="dlq-s", trace_id="t", target_agent_type="echo"
            ),
            content="second chance",
        )
        letter = {
            "stream": keys.agent_stream("echo"),
            "reason": "crashed its workers",
            "raw": encode_command(command).decode(),
        }
        replayable = (
            await client.redis.xadd(keys.dead_letters(), {"data": json.dumps(letter)})
        ).decode()
        for _ in range(100):  # the broken entry reaches the dead-letter stream too
            if await client.redis.xlen(keys.dead_letters()) == 2:
                break
            await asyncio.sleep(0.05)

        listed = run_cli(settings, "dlq", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        letters = json.loads(listed.stdout)
        assert len(letters) == 2 and {x["id"] for x in letters} >= {replayable}
        broken = next(x for x in letters if x["id"] != replayable)
        assert "not JSON" in broken["reason"]

        refused = run_cli(settings, "dlq", "replay", broken["id"])
        assert refused.returncode == 2 and "cannot be replayed" in refused.stderr
        replayed = run_cli(settings, "dlq", "replay", replayable)
        assert replayed.returncode == 0, replayed.stderr
        new_id = json.loads(replayed.stdout)["message_id"]
        assert new_id != "msg-dead"
        final = await client.wait_for_final("dlq-s", new_id, timeout=10)
        assert final.data["content"] == "second chance"
        assert await client.redis.xlen(keys.dead_letters()) == 1  # the replayed one is gone
    finally:
        stop_process(worker)


async def test_sigterm_while_the_worker_joins_stops_it_gracefully(
    tmp_path: object, client: GatewayClient, settings: RedisSettings
) -> None:
    """A SIGTERM that lands during start-up (here: in a slow startup hook, after the lease
    is taken) drains the worker once it has joined: exit 0, lease released, shutdown hook
    run — not a process killed with its lease still held."""
    from pathlib import Path

    from byway.app import worker_env

    work = Path(str(tmp_path))
    out = work / "out.txt"
    script = work / "slow_start.py"
    script.write_text(
        "import asyncio\n"
        "from byway import GatewayWorker, Plugin, PluginManifest, run_worker\n"
        f"OUT = {str(out)!r}\n"
        "class Slow(Plugin):\n"
        "    manifest = PluginManifest('slow-start')\n"
        "    async def on_worker_startup(self, info):\n"
        "        open(OUT, 'a').write('started\\n')\n"
        "        await asyncio.sleep(2)\n"
        "    async def on_worker_shutdown(self, info):\n"
        "        open(OUT, 'a').write('stopped\\n')\n"
        "class Agent(GatewayWorker):\n"
        "    def get_agent_types(self):\n"
        "        return ['slow_start']\n"
        "    async def process_command(self, command, context):\n"
        "        return 'ok'\n"
        f"run_worker(Agent, worker_id='slow-start', plugin_list=[Slow()],\n"
        f"           redis_url={settings.resolved_url()!r}, namespace={settings.namespace!r},\n"
        f"           key_schema={settings.keys.schema!r})\n"
    )
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped by its PID
        [sys.executable, str(script)], env=worker_env(settings)
    )
    try:
        for _ in range(600):
            if out.exists() and "started" in out.read_text():
                break
            assert proc.poll() is None
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # inside the startup hook
        assert await asyncio.to_thread(proc.wait, 60) == 0
    finally:
        stop_process(proc)
    assert out.read_text().split() == ["started", "stopped"]
    assert await client.registry.get_worker("slow-start") is None  # its lease is released
