from __future__ import annotations

import os
import subprocess
import sys

import pytest

from byway import GatewayClient, RedisSettings
from tests.conftest import ROOT, spawn_worker, stop_process, wait_online

pytestmark = pytest.mark.redis


async def test_planner_fans_out_asks_and_finishes(
    settings: RedisSettings, client: GatewayClient
) -> None:
    workers = [
        spawn_worker("examples.orchestration.agents:planner", settings),
        spawn_worker("examples.orchestration.agents:researcher", settings),
        spawn_worker("examples.orchestration.agents:researcher", settings),
    ]
    try:
        await wait_online(client, "planner")
        await wait_online(client, "researcher", count=2)
        env = {
            **os.environ,
            "BYWAY_REDIS_URL": settings.resolved_url(),
            "BYWAY_NAMESPACE": settings.namespace,
        }
        out = subprocess.run(
            [sys.executable, "-m", "examples.orchestration.client", "pricing, hiring", "--yes"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        for worker in workers:
            stop_process(worker)
    assert out.returncode == 0, out.stderr
    assert "researching 2 topics" in out.stdout
    assert "Proceed with this plan? pricing: three sources agree it matters" in out.stdout
    assert out.stdout.strip().endswith(
        "[COMPLETED] approved plan: pricing: three sources agree it matters; "
        "hiring: three sources agree it matters"
    )
