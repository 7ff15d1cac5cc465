"""A password in a Redis URL is never printed, and never on a child process's command line.

Checked where a user would see it: ``describe()`` and ``repr()``, error messages, ``byway
status``, the worker's ready line, ``--help``, and ``/proc/<pid>/cmdline`` of every process
Byway starts (``byway worker`` children, the bench's workers, the demos').
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from byway import ConfigurationError, GatewayClient, RedisSettings
from byway._redact import redact_text, redact_url
from byway.cli import build_parser, main
from tests.agents.basic import echo
from tests.conftest import ROOT, running, spawn_worker, stop_process, wait_online

SECRET = "s3cret-Pw-81d4"

URLS = [
    f"redis://alice:{SECRET}@cache:6379/0",
    f"redis://:{SECRET}@cache:6379",
    f"redis://cache:6379/0?password={SECRET}",
    f"redis://cache:6379/0?username=alice&password={SECRET}&db=1",
    f"rediss://alice:{SECRET}@cache:6380/0?ssl_cert_reqs=required",
    f"redis+cluster://alice:{SECRET}@node-1:7000",
    f"rediss+cluster://node-1:7000?username=alice&password={SECRET}",
    f"unix:///run/redis.sock?password={SECRET}&db=2",
    f"unix://alice:{SECRET}@/run/redis.sock",
    f"redis://alice:p@ss:{SECRET}@cache:6379/0",  # '@' and ':' inside the password
    f"redis://cache/0?pass%77ord={SECRET}",  # the key percent-encoded
]


@pytest.mark.parametrize("url", URLS)
def test_describe_and_repr_mask_the_password_of_every_kind_of_url(url: str) -> None:
    settings = RedisSettings(url=url)
    shown = settings.describe()
    assert SECRET not in shown and "***" in shown
    assert SECRET not in repr(settings)
    assert shown.split("://")[0] == url.split("://")[0]
    if "alice" in url:
        assert "alice" in shown  # the ACL user stays visible


def test_the_masking_keeps_everything_but_the_password() -> None:
    assert redact_url(f"redis://alice:{SECRET}@h:6379/0?db=1") == "redis://alice:***@h:6379/0?db=1"
    assert redact_url(f"unix:///r.sock?password={SECRET}#x") == "unix:///r.sock?password=***#x"
    assert redact_url("redis://h:6379/0?db=1") == "redis://h:6379/0?db=1"
    assert redact_url("redis://alice@h") == "redis://alice@h"
    assert redact_url(f"host=db password='{SECRET} x' user=u") == "host=db password=*** user=u"
    said = redact_text(f"could not reach 'postgresql://u:{SECRET}@db/x', host=db password={SECRET}")
    assert said == "could not reach 'postgresql://u:***@db/x', host=db password=***"


def test_an_unsupported_scheme_is_refused_without_echoing_the_password() -> None:
    with pytest.raises(ConfigurationError, match=r"redis_url: expected a redis://") as caught:
        RedisSettings(url=f"http://alice:{SECRET}@cache:6379/0?password={SECRET}")
    assert SECRET not in str(caught.value) and "http://alice:***@cache" in str(caught.value)


def test_a_url_redis_py_refuses_is_a_configuration_error_without_the_password() -> None:
    settings = RedisSettings(url=f"redis://alice:{SECRET}@cache:6379/0?db=first")
    with pytest.raises(ConfigurationError, match=r"redis_url: Invalid value for 'db'") as caught:
        settings.client()
    assert SECRET not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_help_never_shows_the_configured_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BYWAY_REDIS_URL", f"redis://alice:{SECRET}@cache:6379/0")
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in commands.choices:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        assert SECRET not in capsys.readouterr().out, name


# -- with a real ACL user -------------------------------------------------------------------


@pytest.fixture
def acl_user(redis_url: str, namespace: str) -> Iterator[tuple[str, str]]:
    """An ACL user with a password on the test Redis: (user, host:port/db)."""
    if not redis_url.startswith("redis://"):
        pytest.skip("needs a standalone TCP Redis (ACL users)")
    admin = redis.Redis.from_url(redis_url)
    user = f"{namespace}-user"
    admin.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{SECRET}"],
        keys=["*"],
        channels=["*"],
        commands=["+@all"],
    )
    try:
        yield user, redis_url.split("//", 1)[1]
    finally:
        admin.acl_deluser(user)
        admin.close()


def test_byway_status_prints_the_url_without_its_password(
    acl_user: tuple[str, str], namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    user, where = acl_user
    for url in (
        f"redis://{user}:{SECRET}@{where}",
        f"redis://{where}?username={user}&password={SECRET}",
    ):
        assert main(["status", "--redis-url", url, "--namespace", namespace]) == 0
        out = capsys.readouterr().out
        assert out.startswith("redis: redis://") and "***" in out
        assert SECRET not in out


def test_a_redis_error_in_the_cli_is_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket_closed() as port:
        url = f"redis://alice:{SECRET}@127.0.0.1:{port}/0?password={SECRET}"
        assert main(["status", "--redis-url", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: redis: ") and err.count("\n") == 1, err
    assert SECRET not in err


async def test_the_ready_line_masks_the_password(
    acl_user: tuple[str, str], namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    user, where = acl_user
    settings = RedisSettings(
        url=f"redis://{where}?username={user}&password={SECRET}", namespace=namespace
    )
    caplog.set_level(logging.INFO, logger="byway")
    async with running(echo, settings):
        pass
    [ready] = [r.getMessage() for r in caplog.records if " ready: " in r.getMessage()]
    assert "password=***" in ready and SECRET not in caplog.text


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _children(pid: int) -> dict[int, str]:
    """The command lines of ``pid``'s child processes (Linux /proc)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found[int(entry.name)] = _cmdline(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
async def test_a_worker_process_gets_the_url_through_its_environment(
    acl_user: tuple[str, str], namespace: str
) -> None:
    user, where = acl_user
    settings = RedisSettings(url=f"redis://{user}:{SECRET}@{where}", namespace=namespace)
    worker = spawn_worker("tests.agents.basic:echo", settings)
    try:
        async with GatewayClient(settings=settings) as client:
            await wait_online(client, "echo")  # it reached Redis as the ACL user
            cmdline = _cmdline(worker.pid)
            assert "worker tests.agents.basic:echo" in cmdline
            assert SECRET not in cmdline and where not in cmdline
            with open(f"/proc/{worker.pid}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            assert f"BYWAY_REDIS_URL={settings.url}".encode() in environ
            sent = await client.send_message("echo", "env-s", "hi")
            assert (await client.wait_for_final("env-s", sent.message_id, timeout=10)).data[
                "status"
            ] == "COMPLETED"
    finally:
        stop_process(worker)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
async def test_the_example_demos_start_their_workers_without_the_url_in_argv(
    acl_user: tuple[str, str], namespace: str
) -> None:
    from examples._demo import serving

    user, where = acl_user
    settings = RedisSettings(url=f"redis://{user}:{SECRET}@{where}", namespace=namespace)
    agent_type = f"greeter-{uuid.uuid4().hex[:6]}"
    with serving(settings, ("examples.quickstart.agents:greeter", agent_type)) as workers:
        async with GatewayClient(settings=settings) as client:
            await wait_online(client, agent_type)
        for worker in workers:
            assert SECRET not in _cmdline(worker.pid)


def _children_seen_while(argv: list[str]) -> list[str]:
    """Run ``byway ARGV`` in this process (from the repository root) and return the
    command lines of the child processes it started, as seen while they ran."""
    seen: dict[int, str] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update({pid: cmd for pid, cmd in _children(os.getpid()).items() if cmd})
            done.wait(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        assert main(argv) == 0
    finally:
        os.chdir(old)
        done.set()
        watcher.join()
    return list(seen.values())


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_the_bench_starts_its_workers_without_the_url_in_argv(
    acl_user: tuple[str, str], namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    user, where = acl_user
    url = f"redis://{where}?username={user}&password={SECRET}"
    bench = ["bench", "--workers", "1", "--tasks", "4", "--concurrency", "1"]
    bench += ["--latency-tasks", "1", "--warmup", "0", "--rounds", "1"]
    children = _children_seen_while([*bench, "--redis-url", url, "--namespace", namespace])
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert any("--floor-worker" in c for c in children), children
    assert any("byway.bench:noop_agent" in c for c in children), children
    for cmdline in children:
        assert SECRET not in cmdline and "password" not in cmdline, cmdline


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_byway_demo_starts_its_worker_without_the_url_in_argv(
    acl_user: tuple[str, str], namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    user, where = acl_user
    url = f"redis://{user}:{SECRET}@{where}"
    children = _children_seen_while(["demo", "--redis-url", url, "--namespace", namespace])
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err and "COMPLETED" in out.out
    assert any("byway.demo:assistant" in c for c in children), children
    for cmdline in children:
        assert SECRET not in cmdline, cmdline


@contextlib.contextmanager
def socket_closed() -> Iterator[int]:
    """A local TCP port nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    yield port
