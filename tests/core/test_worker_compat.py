"""by-framework's worker entry points on Byway: ``run_worker(redis_host=...)``,
``python -m byway --worker-class``, ``setup_logging(use_json=True)``, ``--log-json``,
and ``context.workspace`` (hashed path parts, retention, no escape by id or symlink)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from byway import EventType, GatewayClient, RedisSettings
from byway._cli.compat import _is_by_framework
from byway.app import BY_FRAMEWORK_REDIS_URL, redis_settings, worker_env
from byway.common.logger import setup_logging
from byway.errors import ConfigurationError, WorkerError
from byway.workspace import WorkspacePolicy, Workspaces, path_part, remove_tree
from tests.conftest import ROOT, stop_process, wait_online

#: a Redis nothing listens on: a worker that reaches Redis was told where by its arguments
NOWHERE = "redis://127.0.0.1:1/0"
AGENT = "tests.agents.compat_worker.CompatAgent"


def tcp_parts(settings: RedisSettings) -> dict[str, Any]:
    """The test Redis as by-framework's host/port/db/user/password parameters."""
    url = urlsplit(settings.resolved_url())
    if url.scheme != "redis" or not url.hostname:
        pytest.skip(f"needs a redis:// test Redis for host/port, got a {url.scheme} one")
    return {
        "redis_host": url.hostname,
        "redis_port": url.port or 6379,
        "redis_db": int(url.path.strip("/") or 0),
        "redis_username": unquote(url.username) if url.username else None,
        "redis_password": unquote(url.password) if url.password else None,
    }


def start(
    cmd: list[str], settings: RedisSettings, log: Path, **env: str
) -> subprocess.Popen[bytes]:
    """``cmd`` in its own process on the test's namespace, stderr to ``log``."""
    full = {
        **worker_env(settings),
        "BYWAY_NAMESPACE": settings.namespace,
        "BYWAY_KEY_SCHEMA": settings.keys.schema,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **env,
    }
    with open(log, "wb") as err:
        return subprocess.Popen(cmd, env=full, cwd=ROOT, stderr=err)


async def ask(
    client: GatewayClient, session: str, text: str, message_id: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Send ``text`` to ``compat``; its message id and the reply_data of its answer."""
    sent = await client.send_message("compat", session, text, message_id=message_id)
    assert sent.message_id, sent

    async def final() -> dict[str, Any]:
        async for event in client.stream(session, until_message_id=sent.message_id):
            if event.event_type == EventType.FINAL_ANSWER:
                return dict(event.data["reply_data"])
        raise AssertionError("no final answer")

    return sent.message_id, await asyncio.wait_for(final(), 30)


async def until(condition: Any, what: str) -> None:
    """Wait for ``condition()`` (a step that happens after the answer is written)."""
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never: {what}")


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def line_of(lines: list[dict[str, Any]], message: str) -> dict[str, Any]:
    found = [line for line in lines if line["message"] == message]
    assert found, f"no line {message!r} in {lines}"
    return found[0]


# -- run_worker and python -m byway, in worker processes ----------------------------------


@pytest.mark.redis
@pytest.mark.standalone
async def test_run_worker_with_host_port_db_and_json_logging_answers(
    client: GatewayClient, settings: RedisSettings, tmp_path: Path
) -> None:
    parts = tcp_parts(settings)
    script = (
        "import logging\n"
        "from byway import run_worker\n"
        "from byway.common.logger import setup_logging\n"
        "from tests.agents.compat_worker import CompatAgent\n"
        "setup_logging(level=logging.INFO, use_json=True)\n"
        f"run_worker(CompatAgent, worker_id='bf-run-1', workspace_dir={str(tmp_path / 'ws')!r},"
        " redis_max_connections=20, plugin_log_hook_stats_on_shutdown=False,"
        f" **{parts!r})\n"
    )
    log = tmp_path / "worker.log"
    # BYWAY_REDIS_URL names a dead address: only the host/port arguments reach Redis
    proc = start([sys.executable, "-c", script], settings, log, BYWAY_REDIS_URL=NOWHERE)
    try:
        await wait_online(client, "compat", timeout=30)
        mid, reply = await ask(client, "bf-session", "hello")
        assert reply["worker_id"] == "bf-run-1" and reply["pid"] == proc.pid
    finally:
        assert stop_process(proc) == 0, log.read_text()
    line = line_of(json_lines(log), "handling hello")
    assert line["level"] == "INFO" and line["logger"] == "tests.agents.compat_worker"
    assert line["session_id"] == "bf-session" and line["message_id"] == mid
    assert line["agent_type"] == "compat" and line["worker_id"] == "bf-run-1"
    assert line["trace_id"] and line["execution_id"]
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    assert line["step"] == 1 and line["unserialisable"].startswith("<object object")
    ready = [x for x in json_lines(log) if x["message"].startswith("worker bf-run-1 ready")]
    assert ready and "session_id" not in ready[0]  # outside a task: no task ids


@pytest.mark.redis
@pytest.mark.standalone
async def test_python_m_byway_takes_by_frameworks_flags(
    client: GatewayClient, settings: RedisSettings, tmp_path: Path
) -> None:
    parts = tcp_parts(settings)
    if parts["redis_password"] or parts["redis_username"]:
        pytest.skip("by-framework's flags have no password; the test Redis needs one")
    cmd = [sys.executable, "-m", "byway", "--worker-class", AGENT, "--worker-id", "bf-cli-1",
           "--redis-host", parts["redis_host"], "--redis-port", str(parts["redis_port"]),
           "--redis-db", str(parts["redis_db"]), "--workspace", str(tmp_path / "ws"),
           "--max-concurrency", "4", "--fetch-count", "2", "--redis-max-connections", "12",
           "--log-json"]  # fmt: skip
    log = tmp_path / "worker.log"
    proc = start(cmd, settings, log, BYWAY_REDIS_URL=NOWHERE)
    try:
        await wait_online(client, "compat", timeout=30)
        worker = next(w for w in await client.registry.list_workers() if w.worker_id == "bf-cli-1")
        assert worker.max_concurrency == 4
        mid, reply = await ask(client, "cli-session", "workspace here")
        assert reply["worker_id"] == "bf-cli-1"
        assert Path(reply["task_workspace"]).is_relative_to(tmp_path / "ws")
    finally:
        assert stop_process(proc) == 0, log.read_text()
    line = line_of(json_lines(log), "handling workspace here")
    assert line["message_id"] == mid and line["session_id"] == "cli-session"


def test_python_m_byway_names_the_flag_and_lists_both_forms(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        return subprocess.run([sys.executable, "-m", "byway", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    helped = run("--help")
    assert helped.returncode == 0 and "worker" in helped.stdout
    assert "--worker-class" in helped.stdout  # both forms
    bad_port = run("--worker-class", AGENT, "--redis-port", "http")
    assert bad_port.returncode == 2 and "--redis-port" in bad_port.stderr
    missing = run("--worker-class", "tests.agents.compat_worker.Nope", "--redis-host", "h")
    assert missing.returncode == 2 and "--worker-class" in missing.stderr
    assert "Nope" in missing.stderr
    no_class = run("--redis-host", "localhost")
    assert no_class.returncode == 2 and "--worker-class" in no_class.stderr
    assert _is_by_framework(["--log-level", "DEBUG", "--worker-class", "a.B"])
    assert _is_by_framework(["--log-json", "--worker-class", "a.B"])
    assert not _is_by_framework(["worker", "a:B", "--worker-id", "x"])


@pytest.mark.redis
async def test_byway_worker_log_json_tags_the_lines_of_a_task(
    client: GatewayClient, settings: RedisSettings, tmp_path: Path
) -> None:
    cmd = [sys.executable, "-m", "byway", "worker", "tests.agents.compat_worker:CompatAgent",
           "--worker-id", "bw-json-1", "--log-json", "--workspace", str(tmp_path / "ws")]  # fmt: skip
    log = tmp_path / "worker.log"
    proc = start(cmd, settings, log)
    try:
        await wait_online(client, "compat", timeout=30)
        mid, _ = await ask(client, "json-session", "tagged")
    finally:
        assert stop_process(proc) == 0, log.read_text()
    lines = json_lines(log)
    assert lines and len(lines) == len(log.read_text().splitlines())  # every line is JSON
    line = line_of(lines, "handling tagged")
    assert (line["session_id"], line["message_id"], line["worker_id"]) == (
        "json-session",
        mid,
        "bw-json-1",
    )


# -- workspaces through a worker -----------------------------------------------------------


@pytest.mark.redis
async def test_hostile_ids_stay_under_the_root_and_cleanup_deletes_nothing_outside(
    client: GatewayClient, settings: RedisSettings, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    victim = tmp_path / "victim"
    (victim / "private").mkdir(parents=True)
    (victim / "keep.txt").write_text("precious")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    cmd = [sys.executable, "-m", "byway", "worker", "tests.agents.compat_worker:CompatAgent",
           "--workspace", str(root)]  # fmt: skip
    log = tmp_path / "worker.log"
    proc = start(cmd, settings, log)
    try:
        await wait_online(client, "compat", timeout=30)
        # by-framework's attack: its cleanup removed <root>/.../private/<message_id>, and
        # a message id that is an absolute path (or climbs with ..) named any directory
        attacks = [
            (str(victim), str(victim)),
            ("../../" * 8 + str(victim).lstrip("/"), "../../etc"),
        ]
        for message_id, session_id in attacks:
            _, reply = await ask(client, session_id, "workspace attack", message_id=message_id)
            task = Path(reply["task_workspace"])
            assert task.is_relative_to(root / "sessions"), task
            assert ".." not in task.parts and reply["mode"] == reply["session_mode"] == 0o700
            await until(lambda task=task: not task.exists(), "the task's workspace removed")
            session = Path(reply["session_workspace"])
            assert session.is_dir()  # noqa: ASYNC240  (the session's stays)
        # a symlink planted in a workspace: cleanup removes the link, not its target
        _, reply = await ask(client, "plant-session", f"plant:{outside}")
        task = Path(reply["task_workspace"])
        await until(lambda: not task.exists(), "the planted workspace removed")
    finally:
        stop_process(proc)
    assert (victim / "keep.txt").read_text() == "precious" and (victim / "private").is_dir()
    assert (outside / "keep.txt").read_text() == "precious"


# -- workspaces, the parts --------------------------------------------------------------


@pytest.mark.parametrize(
    "wire_id",
    ["../../etc", "/etc/passwd", "a\x00b", "x" * 5000, "..", ".", "ok-id", "C:\\Windows", "é/ü"],
)
def test_path_part_is_one_safe_name_whatever_the_id(wire_id: str, tmp_path: Path) -> None:
    part = path_part("message_id", wire_id)
    assert part == path_part("message_id", wire_id)  # the same directory each time
    assert len(part) <= 49 and part not in (".", "..")
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in part), part
    assert (tmp_path / part).parent == tmp_path
    assert path_part("message_id", wire_id + "x") != part


def test_path_part_refuses_no_id() -> None:
    with pytest.raises(WorkerError, match="session_id"):
        path_part("session_id", "")


def test_workspace_created_on_first_use_kept_while_waiting_removed_at_the_end(
    tmp_path: Path,
) -> None:
    spaces = Workspaces(WorkspacePolicy(root=tmp_path / "ws"))
    assert not (tmp_path / "ws").exists()  # nothing until a task asks
    task = spaces.task_dir("s1", "m1")
    assert task.is_dir() and task.parent.parent == spaces.session_dir("s1")
    assert task.stat().st_mode & 0o777 == 0o700
    assert spaces.task_dir("s1", "m1") == task
    (task / "f").write_text("x")
    asyncio.run(spaces.finish("s1", "m1", ended=False))  # suspended: a resume finds it
    assert (task / "f").exists()
    spaces.task_dir("s1", "m1")
    asyncio.run(spaces.finish("s1", "m1", ended=True))
    assert not task.exists() and task.parent.parent.is_dir()


def test_keep_tasks_keeps_and_idle_sessions_are_swept(tmp_path: Path) -> None:
    spaces = Workspaces(WorkspacePolicy(root=tmp_path, keep_tasks=True, session_idle_seconds=60))
    kept = spaces.task_dir("old", "m")
    asyncio.run(spaces.finish("old", "m", ended=True))
    assert kept.exists()
    busy = spaces.task_dir("busy", "m")  # a run uses it now: never swept
    assert spaces.sweep(now=time.time() + 30) == 0  # not idle yet
    theirs = tmp_path / "sessions" / "2024-notes"  # not a name Byway makes: never swept
    theirs.mkdir()
    (tmp_path / "sessions" / "README").write_text("mine")
    assert spaces.sweep(now=time.time() + 3600) == 1
    assert not kept.parent.parent.exists() and busy.exists()
    assert theirs.exists() and (tmp_path / "sessions" / "README").read_text() == "mine"


def test_cleanup_never_follows_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    spaces = Workspaces(WorkspacePolicy(root=tmp_path / "ws"))
    task = spaces.task_dir("s", "m")
    (task / "link").symlink_to(outside)
    (task / "deep").mkdir()
    (task / "deep" / "link").symlink_to(outside / "keep.txt")
    asyncio.run(spaces.finish("s", "m", ended=True))
    assert not task.exists() and (outside / "keep.txt").read_text() == "precious"
    # a component replaced by a link: the link goes, what it names stays
    session = spaces.session_dir("s2")
    (session / "tasks").symlink_to(outside)
    with pytest.raises(WorkerError, match="not a directory"):
        spaces.task_dir("s2", "m")
    remove_tree(session / "tasks", spaces.root)
    assert not (session / "tasks").exists() and (outside / "keep.txt").exists()
    with pytest.raises(ValueError):
        remove_tree(outside, spaces.root)


def test_workspace_root_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    if os.getuid() == 0:
        os.chown(theirs, 65534, 65534)  # nobody's
    elif Path("/").stat().st_uid != os.getuid():
        theirs = Path("/")
    else:
        pytest.skip("needs a directory owned by another user")
    with pytest.raises(WorkerError, match="another user"):
        Workspaces(WorkspacePolicy(root=theirs)).task_dir("s", "m")


def test_workspace_policy_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BYWAY_WORKSPACE_DIR", str(tmp_path))
    monkeypatch.setenv("BYWAY_WORKSPACE_KEEP_TASKS", "1")
    monkeypatch.setenv("BYWAY_WORKSPACE_SESSION_IDLE_HOURS", "2")
    policy = WorkspacePolicy.from_env()
    assert (policy.root, policy.keep_tasks, policy.session_idle_seconds) == (tmp_path, True, 7200)
    assert WorkspacePolicy.from_env(tmp_path / "x").root == tmp_path / "x"
    monkeypatch.setenv("BYWAY_WORKSPACE_SESSION_IDLE_HOURS", "soon")
    with pytest.raises(ConfigurationError, match="BYWAY_WORKSPACE_SESSION_IDLE_HOURS"):
        WorkspacePolicy.from_env()


# -- settings and logging, the parts ---------------------------------------------------------


def test_redis_settings_from_by_frameworks_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BYAI_REDIS_MAX_CONNECTIONS", raising=False)
    monkeypatch.setenv("BYWAY_REDIS_URL", NOWHERE)
    s = redis_settings(redis_host="cache", redis_port=6380, redis_db=2, redis_username="u",
                       redis_password="p@ss:/", redis_max_connections=7)  # fmt: skip
    assert s.url == "redis://u:p%40ss%3A%2F@cache:6380/2" and s.max_connections == 7
    assert "p@ss" not in repr(s)
    assert redis_settings(redis_port=7000).url == "redis://localhost:7000/0"
    assert redis_settings(redis_host="::1").url == "redis://[::1]:6379/0"
    assert redis_settings().url == NOWHERE  # none given: Byway's default (env, else embedded)
    assert redis_settings(default_url="redis://elsewhere:6379/0").url == NOWHERE  # env wins
    monkeypatch.delenv("BYWAY_REDIS_URL")
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert redis_settings().url is None  # the embedded server (byway worker)
    # run_worker and python -m byway --worker-class: by-framework's localhost:6379
    assert redis_settings(default_url=BY_FRAMEWORK_REDIS_URL).url == "redis://localhost:6379/0"
    monkeypatch.setenv("BYWAY_REDIS_URL", NOWHERE)
    assert redis_settings(max_concurrency=200).max_connections == 210
    monkeypatch.setenv("BYAI_REDIS_MAX_CONNECTIONS", "33")
    assert redis_settings(redis_max_connections=7).max_connections == 33
    with pytest.raises(ConfigurationError, match="redis_url and redis_host, redis_port"):
        redis_settings("redis://x:1/0", redis_host="h", redis_port=1)
    monkeypatch.delenv("BYAI_REDIS_MAX_CONNECTIONS")
    for bad, name in [({"redis_port": 0}, "redis_port"), ({"redis_db": -1}, "redis_db"),
                      ({"redis_max_connections": 1}, "redis_max_connections"),
                      ({"redis_host": "a/b"}, "redis_host"), ({"redis_port": "1"}, "redis_port")]:  # fmt: skip
        with pytest.raises(ConfigurationError, match=name):
            redis_settings(**bad)


def test_json_lines_never_fail_and_carry_exceptions() -> None:
    out = io.StringIO()
    logger = setup_logging("tests.compat.json", level=logging.DEBUG, use_json=True, stream=out)
    try:
        circular: list[Any] = []
        circular.append(circular)
        logger.info("bad %d", "args")
        logger.info("circular", extra={"loop": circular, "odd": {(1, 2): "tuple key"}})
        logger.info("line\u2028break\nand newline")
        logger.info("forged", extra={"level": "FAKE", "timestamp": "T", "note": "ok"})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.handlers.clear()
        logger.propagate = True
    lines = out.getvalue().splitlines()
    parsed = [json.loads(line) for line in lines]
    assert len(parsed) == 5
    assert parsed[0]["message"].startswith("bad")
    assert parsed[2]["message"] == "line\u2028break\nand newline"
    forged = parsed[3]  # extra= fields never replace the line's own
    assert forged["level"] == "INFO" and forged["timestamp"] != "T" and forged["note"] == "ok"
    assert parsed[4]["exception"].endswith("RuntimeError: boom")
    assert "session_id" not in parsed[4]


def test_setup_logging_is_importable_where_the_readme_says() -> None:
    import byway
    import byway.common.logger as compat

    assert byway.setup_logging is compat.setup_logging
