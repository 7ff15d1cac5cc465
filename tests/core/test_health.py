"""The health server listens on 127.0.0.1 unless ``--health-host`` says otherwise."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request

import pytest

from byway import GatewayClient, RedisSettings
from byway.cli import build_parser
from tests.conftest import free_port, spawn_worker, stop_process, wait_online

pytestmark = pytest.mark.redis

OTHER_LOOPBACK = "127.0.0.2"  # Linux routes all of 127/8 to lo: a second local address


def _get(host: str, port: int, path: str = "/healthz") -> int:
    """The status of GET path, 0 when nothing listens there."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0


def _other_loopback_usable() -> bool:
    with socket.socket() as s:
        try:
            s.bind((OTHER_LOOPBACK, 0))
        except OSError:
            return False
    return True


async def _until_listening(host: str, port: int) -> None:
    for _ in range(200):
        if await asyncio.to_thread(_get, host, port) == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"nothing answered on {host}:{port}")


@pytest.mark.skipif(not _other_loopback_usable(), reason="needs 127.0.0.2 on the loopback")
async def test_the_health_server_binds_loopback_by_default_and_the_host_given(
    client: GatewayClient, settings: RedisSettings
) -> None:
    default_port, flag_port = free_port(), free_port()
    workers = [
        spawn_worker("tests.agents.basic:echo", settings, "--health-port", str(default_port)),
        spawn_worker(
            "tests.agents.basic:echo",
            settings,
            "--health-port",
            str(flag_port),
            "--health-host",
            OTHER_LOOPBACK,
            env={"BYWAY_HEALTH_HOST": "127.0.0.1"},  # the flag wins over the variable
        ),
    ]
    try:
        await wait_online(client, "echo", count=2)
        await _until_listening("127.0.0.1", default_port)
        assert await asyncio.to_thread(_get, "127.0.0.1", default_port, "/readyz") == 200
        assert await asyncio.to_thread(_get, OTHER_LOOPBACK, default_port) == 0
        await _until_listening(OTHER_LOOPBACK, flag_port)
        assert await asyncio.to_thread(_get, "127.0.0.1", flag_port) == 0
    finally:
        for worker in workers:
            stop_process(worker)


def test_the_health_host_option_defaults_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BYWAY_HEALTH_HOST", raising=False)
    assert build_parser().parse_args(["worker", "m:a"]).health_host == "127.0.0.1"
    monkeypatch.setenv("BYWAY_HEALTH_HOST", "0.0.0.0")
    assert build_parser().parse_args(["worker", "m:a"]).health_host == "0.0.0.0"
    args = build_parser().parse_args(["worker", "m:a", "--health-host", "::1"])
    assert args.health_host == "::1"
