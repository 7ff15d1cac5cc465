from __future__ import annotations

import os
import subprocess
import sys

import pytest

from byway import RedisSettings
from tests.conftest import ROOT

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


def test_the_langgraph_demo_streams_tools_and_tokens_and_waits_for_approval(
    settings: RedisSettings,
) -> None:
    env = {
        **os.environ,
        "BYWAY_REDIS_URL": settings.resolved_url(),
        "BYWAY_NAMESPACE": settings.namespace,
    }
    out = subprocess.run(
        [sys.executable, "-m", "examples.langgraph_app.demo", "Plan a trip to Porto"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    assert 'tool_calls: [{"name": "get_weather"' in out.stdout
    assert "asks (" in out.stdout and "Book a trip to Porto? (yes/no)" in out.stdout
    assert (
        "The forecast for Porto: sunny and 24°C in Porto all week. "
        "Booked: 3 nights in Porto, confirmation TRV-9595." in out.stdout
    )
    assert "QUEUED → RUNNING → WAITING_USER → RESUMED → COMPLETED" in out.stdout
