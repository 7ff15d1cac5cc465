"""The examples, each run by a test."""

from __future__ import annotations

import os
import subprocess
import sys

from byway import RedisSettings
from tests.conftest import ROOT


def run_demo(settings: RedisSettings, module: str, *args: str) -> str:
    """Run ``python -m module *args`` on the test's Redis and namespace; its stdout."""
    env = {
        **os.environ,
        "BYWAY_REDIS_URL": settings.resolved_url(),
        "BYWAY_NAMESPACE": settings.namespace,
    }
    env.pop("GOOGLE_API_KEY", None)  # the scripted model, never the network
    out = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout
