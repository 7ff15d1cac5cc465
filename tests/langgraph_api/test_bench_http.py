"""``python -m byway_langgraph.bench_http`` with tiny numbers: it starts ``byway serve``
and a worker process itself, drives them through ``langgraph_sdk.get_client`` and reports
its figures as JSON (no timing is asserted: the figures only have to exist).

The ``langgraph dev`` side runs only with ``BYWAY_TEST_LANGGRAPH_DEV`` set to a
``langgraph`` executable (``python -m byway_langgraph.langgraph_dev`` prints one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from byway import RedisSettings
from tests.conftest import ROOT

LANGGRAPH_DEV = os.environ.get("BYWAY_TEST_LANGGRAPH_DEV", "")
TINY = ["--runs", "4", "--warmup", "2", "--concurrency", "2", "--rounds", "2", "--json"]


def bench(settings: RedisSettings, *args: str) -> subprocess.CompletedProcess[str]:
    """The bench as a user runs it, its sub-namespace under the test's own."""
    env = {
        **os.environ,
        "BYWAY_NAMESPACE": settings.namespace,
        "BYWAY_KEY_SCHEMA": settings.keys.schema,
    }
    return subprocess.run(
        [sys.executable, "-m", "byway_langgraph.bench_http", "--redis-url",
         settings.resolved_url(), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def figures(done: subprocess.CompletedProcess[str], system: str) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    found: dict[str, Any] = result["systems"][system]
    return found


def check(found: dict[str, Any]) -> None:
    assert found["runs"] == 4 and found["errors"] == 0, found
    for key in ("runs_per_s", "ttft_p50_ms", "ttft_p99_ms", "run_p50_ms", "run_p99_ms"):
        assert found[key] > 0, (key, found)
    assert found["ttft_p50_ms"] <= found["run_p50_ms"]


async def test_bench_http_measures_byway_serve(settings: RedisSettings, redis: Any) -> None:
    done = bench(settings, "--systems", "byway", "--workers", "1", *TINY)
    check(figures(done, "byway"))
    assert json.loads(done.stdout)["ratio"] is None  # one system: nothing to divide
    assert [k async for k in redis.scan_iter(match=f"{settings.namespace}:bench-http-*")] == []


@pytest.mark.skipif(
    not LANGGRAPH_DEV, reason="set BYWAY_TEST_LANGGRAPH_DEV=/path/to/langgraph to run it"
)
def test_bench_http_measures_langgraph_dev(settings: RedisSettings) -> None:
    done = bench(settings, "--systems", "langgraph-dev", "--langgraph-dev", LANGGRAPH_DEV, *TINY)
    check(figures(done, "langgraph-dev"))


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--concurrency", "0"], "--concurrency"),
        (["--concurrency", "101"], "--concurrency"),
        (["--systems", "byway,nope"], "--systems"),
        (["--runs", "1", "--rounds", "2"], "--runs"),
    ],
)
def test_bench_http_refuses_bad_options(
    settings: RedisSettings, args: list[str], named: str
) -> None:
    done = bench(settings, *args)
    assert done.returncode == 2
    assert named in done.stderr and done.stdout == ""
