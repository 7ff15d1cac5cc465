"""The ACL roles ``byway acl`` prints, exercised with real ACL users on a real Redis 7:
a worker runs everything under its rules, a client sends, streams, resumes and cancels
without scripts and cannot write records or session streams, a reader reads only."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from byway import GatewayClient, RedisSettings
from byway.cli import main
from byway.worker import FunctionWorker
from tests.agents import basic
from tests.conftest import (
    ROOT,
    private_redis,
    run_cli,
    running,
    spawn_worker,
    stop_process,
    until_status,
    wait_online,
)

pytestmark = [pytest.mark.redis, pytest.mark.standalone]

#: makes an ACL user of a role (and key schema) for the test's namespace: its settings
MakeUser = Callable[..., Awaitable[RedisSettings]]


def _byway_acl(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["acl", *args]) == 0
    return out.getvalue()


async def _server_version(redis: aioredis.Redis) -> tuple[int, ...]:
    info: Any = await redis.info("server")
    return tuple(int(p) for p in str(info["redis_version"]).split(".")[:2])


@pytest.fixture
async def make_user(redis: aioredis.Redis, settings: RedisSettings) -> AsyncIterator[MakeUser]:
    """ACL users made from ``byway acl --format json`` for this namespace, deleted after."""
    if settings.url is None or urlsplit(settings.url).scheme != "redis":
        pytest.skip("needs a redis:// server to log in to as ACL users")
    version = await _server_version(redis)
    if version < (7, 0):
        pytest.skip(f"read/write key permissions need Redis 7, this is {version}")
    try:
        await redis.execute_command("ACL", "WHOAMI")
    except Exception as exc:  # a managed Redis may refuse ACL to the test's user
        pytest.skip(f"ACL is not available to the test's user: {exc}")
    dialect = "7.2" if version >= (7, 2) else "7.0"
    made: list[str] = []

    async def make(role: str, schema: str = "v1") -> RedisSettings:
        name = f"bwt-{role}-{secrets.token_hex(4)}"
        password = secrets.token_hex(12)
        printed = _byway_acl(
            "--role", role, "--user", name, "--namespace", settings.namespace,
            "--key-schema", schema, "--redis-version", dialect, "--format", "json",
        )  # fmt: skip
        [user] = json.loads(printed)
        assert user["user"] == name and user["role"] == role
        made.append(name)
        await redis.execute_command("ACL", "SETUSER", name, *user["rules"], f">{password}")
        parts = urlsplit(settings.url)
        netloc = f"{name}:{password}@{parts.hostname}:{parts.port or 6379}"
        return replace(settings, url=parts._replace(netloc=netloc).geturl(), schema=schema)

    yield make
    for name in made:
        await redis.execute_command("ACL", "DELUSER", name)


async def _denials(redis: aioredis.Redis, user: RedisSettings) -> list[str]:
    """What Redis refused ``user`` (its ACL log), as 'reason object' strings."""
    name = urlsplit(user.url or "").username
    entries: Any = await redis.acl_log()
    return [f"{e['reason']} {e['object']}" for e in entries if e["username"] == name]


async def _refused(call: Awaitable[Any]) -> str:
    with pytest.raises(NoPermissionError) as caught:
        await call
    return str(caught.value)


async def _ask_and_answer(client: GatewayClient, session: str) -> str:
    """chain_a calls chain_b, which calls chain_c, which asks the user; answered here."""
    sent = await client.send_message("chain_a", session, "ask:proceed?")
    assert sent.success, sent.error
    async for event in client.stream(session, idle_timeout=20):
        if event.kind == "ask_user":
            assert event.data["prompt"] == "proceed?"
            await client.resume(session, event.message_id, "yes")
            break
    final = await client.wait_for_final(session, sent.message_id, timeout=20)
    assert final.data["status"] == "COMPLETED", final.data
    return str(final.data["content"])


async def _cancel_a_tree(client: GatewayClient, session: str) -> tuple[str, str]:
    """chain_a → chain_b → chain_c (running 20 s); cancel chain_a: (its final, chain_c's
    end state)."""
    sent = await client.send_message("chain_a", session, "20")
    deep = None
    for _ in range(400):
        records = await client.registry.list_executions(session)
        deep = next((r for r in records if r.target_agent_type == "chain_c"), None)
        if deep is not None and deep.status == "RUNNING":
            break
        await asyncio.sleep(0.05)
    assert deep is not None and deep.status == "RUNNING"
    await client.cancel_task(sent.message_id, session, reason="enough")
    final = await client.wait_for_final(session, sent.message_id, timeout=20)
    ended = await until_status(client, session, deep.message_id, "CANCELLED")
    return str(final.data["status"]), ended.status


async def _everything(client: GatewayClient, prefix: str) -> None:
    """A task, a question answered, calls, a task group and a cancel, through ``client``."""
    sent = await client.send_message("echo", f"{prefix}-echo", "hello acl world")
    assert sent.success, sent.error
    final = await client.wait_for_final(f"{prefix}-echo", sent.message_id, timeout=20)
    assert final.data["content"] == "hello acl world"
    assert await _ask_and_answer(client, f"{prefix}-ask") == "A(B(C:yes))"
    sent = await client.send_message("fan", f"{prefix}-fan", "a bb ccc")
    final = await client.wait_for_final(f"{prefix}-fan", sent.message_id, timeout=20)
    results = final.data["reply_data"]["results"]
    assert [r["content"] for r in results] == ["A", "BB", "CCC"]
    assert await _cancel_a_tree(client, f"{prefix}-cancel") == ("CANCELLED", "CANCELLED")


async def test_a_worker_process_runs_everything_under_the_worker_role(
    redis: aioredis.Redis, settings: RedisSettings, make_user: MakeUser
) -> None:
    worker_user = await make_user("worker")
    proc = spawn_worker("tests.agents.multi:Multi", worker_user)
    try:
        async with GatewayClient(settings=settings) as client:  # scripts: the full client
            await wait_online(client, "echo")
            await _everything(client, "w")
    finally:
        assert stop_process(proc) == 0
    assert await _denials(redis, worker_user) == []  # not one command was refused


@pytest.mark.parametrize("schema", ["v1", "v2"])
async def test_a_client_without_scripts_sends_streams_resumes_and_cancels(
    redis: aioredis.Redis, settings: RedisSettings, make_user: MakeUser, schema: str
) -> None:
    settings = replace(settings, schema=schema)  # type: ignore[arg-type]
    worker_user = await make_user("worker", schema)
    client_user = await make_user("client", schema)
    proc = spawn_worker("tests.agents.multi:Multi", worker_user)
    try:
        async with GatewayClient(settings=client_user) as client:
            await wait_online(client, "echo")
            assert client.uses_scripts  # until Redis refuses the first one
            await _everything(client, "c")
            assert not client.uses_scripts
            refused = await client.send_message("nobody", "c-none", "hi")
            assert refused.error_code == "AGENT_TYPE_UNAVAILABLE"  # checked without scripts
            cli = await asyncio.to_thread(
                _cli, client_user, "send", "echo", "from the cli", "--session", "c-cli", "-f"
            )
        assert cli.returncode == 0, cli.stderr
        assert "from the cli" in cli.stdout
        assert "without scripts" in cli.stderr  # one line says why
        # what the client user may not do, seen from the worker's end
        async with GatewayClient(settings=settings) as admin:
            record = await admin.registry.get_execution_by_message("c-none", refused.message_id)
            assert record is None  # refused asks left no record
    finally:
        assert stop_process(proc) == 0
    assert await _denials(redis, worker_user) == []
    # the only refusals the client met: the first script it tried, and the cli's
    assert set(await _denials(redis, client_user)) == {"command evalsha"}


async def test_a_client_cannot_write_records_or_session_streams_nor_run_scripts(
    settings: RedisSettings, make_user: MakeUser
) -> None:
    client_user = await make_user("client")
    keys = settings.keys
    r = client_user.client()
    try:
        record = keys.session_registry("victim")
        assert "no permissions" in await _refused(r.hset(record, "exec:x", "{}"))
        assert "no permissions" in await _refused(r.hset(record, "msg_map:m", "x"))
        events = keys.session_stream("victim")
        assert "no permissions" in await _refused(r.xadd(events, {"data": "{}"}))
        assert "eval" in await _refused(r.eval("return 1", 0))
        sha = "0" * 40
        assert "evalsha" in await _refused(r.evalsha(sha, 1, record))
        assert "no permissions" in await _refused(r.set(keys.worker_online("w"), "x"))
        assert "flushdb" in await _refused(r.flushdb())
        # what it may do: a command on a control stream, reads of records and events
        await r.xadd(keys.agent_stream("echo"), {"data": "{}"})
        assert await r.hgetall(record) == {}
        assert await r.xrange(events) == []
    finally:
        await r.aclose()


async def test_a_reader_runs_byway_status_and_writes_nothing(
    settings: RedisSettings, make_user: MakeUser
) -> None:
    reader = await make_user("reader")
    echo = FunctionWorker(basic.echo.handler, ["echo"], worker_id="acl-reader-w")
    async with running(echo, settings, plugins=[]):
        status = await asyncio.to_thread(_cli, reader, "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert [w["worker_id"] for w in report["workers"]] == ["acl-reader-w"]
    assert [q["agent_type"] for q in report["agent_types"]] == ["echo"]
    keys = settings.keys
    r = reader.client()
    try:
        await _refused(r.xadd(keys.agent_stream("echo"), {"data": "{}"}))
        await _refused(r.hset(keys.session_registry("s"), "exec:x", "{}"))
        await _refused(r.set(keys.worker_online("w"), "x"))
        await _refused(r.eval("return 1", 0))
        await _refused(r.xreadgroup("agent_engines", "me", {keys.agent_stream("echo"): ">"}))
    finally:
        await r.aclose()


async def test_a_worker_cannot_touch_another_namespace_nor_run_dangerous_commands(
    redis: aioredis.Redis, settings: RedisSettings, make_user: MakeUser
) -> None:
    worker_user = await make_user("worker")
    name = urlsplit(worker_user.url or "").username
    r = worker_user.client()
    other = f"{settings.namespace}x"  # a namespace that shares the prefix, but not the ':'
    try:
        await r.set(f"{settings.namespace}:ok", "1")
        for key in (f"{other}:ctrl:agent_type:echo", "byai_gateway:registry:workers", "x"):
            await _refused(r.get(key))
            await _refused(r.xadd(key, {"data": "{}"}))
        script = "return redis.call('SET', KEYS[1], '1')"
        await _refused(r.eval(script, 1, f"{other}:k"))
    finally:
        await r.aclose()
    dangerous = [
        ["FLUSHALL"], ["FLUSHDB"], ["CONFIG", "SET", "save", ""], ["CONFIG", "GET", "*"],
        ["KEYS", "*"], ["DEBUG", "SLEEP", "0"], ["ACL", "LIST"], ["SHUTDOWN"], ["MONITOR"],
        ["SCRIPT", "FLUSH"], ["SAVE"], ["REPLICAOF", "NO", "ONE"], ["CLIENT", "KILL", "ID", "1"],
        ["SCAN", "0"], ["SUBSCRIBE", "c"], ["MODULE", "LIST"], ["FUNCTION", "FLUSH"],
    ]  # fmt: skip
    for command in dangerous:  # ACL DRYRUN: asks, runs nothing
        verdict = await redis.execute_command("ACL", "DRYRUN", name, *command)
        assert verdict != b"OK", command
    assert await redis.execute_command("ACL", "DRYRUN", name, "XADD", "x:y", "*", "a", "b") != b"OK"
    ok = await redis.execute_command(
        "ACL", "DRYRUN", name, "EVALSHA", "0" * 40, "1", f"{settings.namespace}:k"
    )
    assert ok == b"OK"


async def test_the_adapters_keys_are_within_the_worker_role(
    redis: aioredis.Redis, make_user: MakeUser
) -> None:
    """LangGraph checkpoints (<ns>:lg:*) and ADK sessions (<ns>:adk:*) under the worker user."""
    worker_user = await make_user("worker")
    ran = []
    try:
        from tests.langgraph.test_checkpoint import (
            test_a_graph_interrupted_with_one_saver_resumes_with_another as graph_round_trip,
        )
    except ImportError:
        pass
    else:
        await graph_round_trip(worker_user)
        ran.append("langgraph")
    try:
        from byway_adk import RedisSessionService

        from tests.adk.test_sessions import _play
    except ImportError:
        pass
    else:
        r = worker_user.client()
        try:
            played = await _play(RedisSessionService(r, namespace=worker_user.namespace))
        finally:
            await r.aclose()
        assert played  # the conversation came back
        ran.append("adk")
    if not ran:
        pytest.skip("neither byway-langgraph nor byway-adk is installed")
    assert await _denials(redis, worker_user) == []


def test_byway_acl_prints_every_role_with_its_limits() -> None:
    out = _byway_acl("--namespace", "shop")
    lines = [line for line in out.splitlines() if line.startswith("ACL SETUSER")]
    assert [line.split()[2] for line in lines] == ["byway-worker", "byway-client", "byway-reader"]
    worker, client, reader = (line.split()[3:] for line in lines)
    assert "~shop:*" in worker and "+evalsha" in worker and "+flushall" not in worker
    assert "%W~shop:ctrl:agent_type:*" in client and "%R~shop:session:*:registry" in client
    assert not any(r in client for r in ("+eval", "+evalsha", "+hset"))
    assert "%R~shop:*" in reader and "+xadd" not in reader
    v2 = _byway_acl("--namespace", "shop", "--key-schema", "v2", "--role", "client")
    assert "%R~shop:v2:session:{*}:data_stream" in v2 and "+cluster|slots" in v2
    old = _byway_acl("--role", "client", "--redis-version", "6.2")
    assert "%R~" not in old and "cannot separate reads from writes" in old
    assert "no password set" in out


def test_the_redis_6_2_rules_load_into_redis_6_2() -> None:
    """The embedded server is Redis 6.2: its dialect of the rules must be accepted there."""
    import redis as sync_redis

    with private_redis() as url:
        r = sync_redis.Redis.from_url(url)
        for schema in ("v1", "v2"):
            for user in json.loads(
                _byway_acl("--key-schema", schema, "--redis-version", "6.2", "--format", "json")
            ):
                assert r.execute_command("ACL", "SETUSER", user["user"], *user["rules"]) == b"OK"
        r.close()


async def test_setuser_lines_with_a_password_from_stdin_make_users_that_log_in(
    redis: aioredis.Redis, settings: RedisSettings, make_user: MakeUser
) -> None:
    version = await _server_version(redis)
    dialect = "7.2" if version >= (7, 2) else "7.0"
    name = f"bwt-stdin-{secrets.token_hex(4)}"
    password = secrets.token_hex(8)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "byway", "acl", "--role", "reader", "--user", name,
         "--namespace", settings.namespace, "--redis-version", dialect, "--password-stdin"],
        input=password + "\n", capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout  # only its hash is printed
    [line] = [line for line in done.stdout.splitlines() if line.startswith("ACL SETUSER")]
    try:
        assert await redis.execute_command(*line.split()) == b"OK"
        r = aioredis.Redis(
            host=urlsplit(settings.url or "").hostname, username=name, password=password
        )
        assert await r.ping()
        await r.aclose()
    finally:
        await redis.execute_command("ACL", "DELUSER", name)


def _cli(settings: RedisSettings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(settings, *args, key_schema=True)
