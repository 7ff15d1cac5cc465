from __future__ import annotations

import os
import subprocess
import sys

import pytest

from byway import RedisSettings
from tests.conftest import ROOT, spawn_worker, stop_process, wait_online

pytestmark = pytest.mark.redis


async def test_quickstart_worker_and_client(settings: RedisSettings, client) -> None:  # type: ignore[no-untyped-def]
    worker = spawn_worker("examples.quickstart.agents:greeter", settings)
    try:
        await wait_online(client, "greeter")
        env = {
            **os.environ,
            "BYWAY_REDIS_URL": settings.resolved_url(),
            "BYWAY_NAMESPACE": settings.namespace,
        }
        out = subprocess.run(
            [sys.executable, "-m", "examples.quickstart.client", "Ada"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        stop_process(worker)
    assert out.returncode == 0, out.stderr
    assert "Hello, Ada! This answer was streamed by worker" in out.stdout
    assert out.stdout.strip().endswith("[COMPLETED]")
