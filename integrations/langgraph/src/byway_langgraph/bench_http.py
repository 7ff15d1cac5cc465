"""Runs/s and time to first token through LangGraph's own SDK client: ``byway serve`` with
N worker processes beside ``langgraph dev``, the same graph file, in one run.

    python -m byway_langgraph.bench_http --redis-url redis://127.0.0.1:6379 --workers 2

Both servers are started here: ``byway serve`` and ``byway worker
byway_langgraph.bench_http_graph:graph`` processes (graph id ``agent``) on a random
sub-namespace of the Redis (deleted at the end), and ``langgraph dev`` from a virtualenv
of its own, made on first use (:mod:`byway_langgraph.langgraph_dev`), loading the same
``bench_http_graph.py`` by its path. ``--byway-url`` / ``--langgraph-url`` measure servers
already running instead (serving that graph as ``agent``).

It is not ``byway bench --target http``: there ``--target`` already names what the
workers serve (``MODULE:ATTR``), and the core knows nothing of LangGraph's API.
The client harness is :mod:`byway_langgraph._bench_http_harness`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from byway._process import stop_processes
from byway.app import worker_command, worker_env
from byway.client import GatewayClient
from byway.errors import BywayError
from byway.settings import RedisSettings
from byway_langgraph import bench_http_graph
from byway_langgraph._bench_http_harness import (
    MAX_CONCURRENCY,
    Figures,
    RunFailed,
    Target,
    measure,
    ratios,
    say,
    table,
)
from byway_langgraph.langgraph_dev import ensure_langgraph_dev, free_port, running_langgraph_dev

__all__ = ["GRAPH_TARGET", "main"]

#: what the byway workers serve; langgraph dev loads the same module's file
GRAPH_TARGET = "byway_langgraph.bench_http_graph:graph"
ASSISTANT = "agent"
BYWAY, LANGGRAPH_DEV = "byway", "langgraph-dev"
READY_TIMEOUT_S = 60.0


# -- byway serve and its workers ---------------------------------------------------------


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _start_byway(
    settings: RedisSettings, workers: int, concurrency: int
) -> tuple[int, list[subprocess.Popen[bytes]]]:
    """Start ``byway serve`` on a free loopback port and ``workers`` worker processes of
    the bench graph, each in a session of its own (a Ctrl-C reaches only the bench)."""
    env = worker_env(settings)
    env.pop("BYWAY_SERVER_API_KEYS", None)  # loopback, no keys: the SDK sends none
    port = free_port()
    schema = ["--namespace", settings.namespace, "--key-schema", settings.keys.schema]
    serve = [sys.executable, "-m", "byway", "--log-level", "WARNING", "serve", "--port",
             str(port), *schema, "--log-level", "warning"]  # fmt: skip
    worker = worker_command(
        GRAPH_TARGET, settings, "--agent-type", ASSISTANT, "--concurrency", str(concurrency)
    )
    say(f"byway: starting byway serve on port {port} and {workers} worker process(es)")
    procs = [subprocess.Popen(serve, env=env, start_new_session=True)]
    procs += [subprocess.Popen(worker, env=env, start_new_session=True) for _ in range(workers)]
    return port, procs


@contextlib.asynccontextmanager
async def _byway(settings: RedisSettings, workers: int, concurrency: int) -> AsyncIterator[str]:
    """``byway serve`` and its workers; yields the server's URL once it answers and every
    worker is online."""
    port, procs = _start_byway(settings, workers, concurrency)
    url = f"http://127.0.0.1:{port}"
    try:
        async with GatewayClient(settings=settings) as client:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                if any(p.poll() is not None for p in procs):
                    raise BywayError("byway: a server or worker process exited during startup")
                online = [
                    w for w in await client.registry.list_workers() if ASSISTANT in w.agent_types
                ]
                if len(online) >= workers and await asyncio.to_thread(_healthy, url):
                    break
                if time.monotonic() > deadline:
                    raise BywayError(f"byway: not ready within {READY_TIMEOUT_S:.0f}s")
                await asyncio.sleep(0.1)
        yield url
    finally:
        stop_processes(procs, grace=15)


async def _cleanup(settings: RedisSettings) -> None:
    """Delete every key of this run's random namespace."""
    redis = settings.client()
    try:
        keys = [key async for key in redis.scan_iter(match=f"{settings.namespace}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await redis.delete(*keys[i : i + 500])
    finally:
        await redis.aclose()


@contextlib.contextmanager
def _langgraph_dev(args: argparse.Namespace) -> Iterator[str]:
    binary = Path(args.langgraph_dev) if args.langgraph_dev else ensure_langgraph_dev()
    jobs = args.langgraph_jobs or args.concurrency
    graph_file = Path(bench_http_graph.__file__).resolve()
    say(f"langgraph-dev: starting {binary} dev (--n-jobs-per-worker {jobs})")
    with running_langgraph_dev(binary, {ASSISTANT: f"{graph_file}:graph"}, jobs=jobs) as server:
        say(f"langgraph-dev: answering on {server.url} (log: {server.log})")
        yield server.url


# -- command -----------------------------------------------------------------------------


async def _info(target: Target) -> Any:
    """The server's ``/info`` (versions, flags), or None when it has none."""
    try:
        return await target.sdk().http.get("/info")
    except Exception:
        return None


async def _bench(
    args: argparse.Namespace, settings: RedisSettings
) -> tuple[dict[str, Figures], dict[str, Any]]:
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    targets: list[Target] = []
    async with contextlib.AsyncExitStack() as stack:
        if BYWAY in systems:
            url = args.byway_url
            if not url:
                stack.push_async_callback(_cleanup, settings)
                url = await stack.enter_async_context(
                    _byway(settings, args.workers, max(50, args.concurrency))
                )
            targets.append(Target(BYWAY, url.rstrip("/"), args.assistant))
        if LANGGRAPH_DEV in systems:
            url = args.langgraph_url or stack.enter_context(_langgraph_dev(args))
            targets.append(Target(LANGGRAPH_DEV, url.rstrip("/"), args.assistant))
        for target in targets:
            stack.push_async_callback(target.close)
        figures = await measure(
            targets,
            bench_http_graph.REPLY,
            concurrency=args.concurrency,
            warmup=args.warmup,
            rounds=args.rounds,
            runs=args.runs,
            seconds=None if args.runs else args.duration,
        )
        infos = {t.name: await _info(t) for t in targets}
    both = BYWAY in figures and LANGGRAPH_DEV in figures
    jobs = args.langgraph_jobs or args.concurrency
    return figures, {
        "config": {
            "concurrency": args.concurrency,
            "byway_workers": args.workers if BYWAY in systems and not args.byway_url else None,
            "langgraph_jobs": jobs if LANGGRAPH_DEV in systems and not args.langgraph_url else None,
            "rounds": args.rounds,
            "runs": args.runs,
            "duration_s": None if args.runs else args.duration,
            "warmup": args.warmup,
            "reply": bench_http_graph.REPLY,
        },
        "systems": {name: fig.as_dict() for name, fig in figures.items()},
        "ratio": ratios(figures, BYWAY, LANGGRAPH_DEV) if both else None,
        "info": infos,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m byway_langgraph.bench_http", description=__doc__.split("\n\n")[0]
    )
    add = parser.add_argument
    add("--redis-url", help="Byway's Redis (default: $BYWAY_REDIS_URL, else embedded)")
    add("--workers", type=int, default=2, help="byway worker processes (2)")
    add("--concurrency", type=int, default=8, help="runs in flight at once (8)")
    add("--duration", type=float, default=20.0, help="seconds per system, over the rounds (20)")
    add("--runs", type=int, help="runs per system instead of --duration")
    add("--rounds", type=int, default=2, help="alternate the systems in this many rounds (2)")
    add("--warmup", type=int, default=20, help="warm-up runs per system (20)")
    add(
        "--systems",
        default=f"{BYWAY},{LANGGRAPH_DEV}",
        help=f"which to measure: {BYWAY}, {LANGGRAPH_DEV} or both (default both)",
    )
    add("--langgraph-dev", metavar="PATH", help="a `langgraph` executable (default: own venv)")
    add(
        "--langgraph-jobs",
        type=int,
        help="langgraph dev --n-jobs-per-worker (default: --concurrency; its own default is 1)",
    )
    add("--byway-url", help="measure this running byway serve instead of starting one")
    add("--langgraph-url", help="measure this running langgraph dev instead of starting one")
    add("--assistant", default=ASSISTANT, help=f"assistant / graph id ({ASSISTANT})")
    add("--json", action="store_true", help="print the results as JSON")
    return parser


def _check(args: argparse.Namespace) -> None:
    for name in ("workers", "concurrency", "rounds"):
        if getattr(args, name) <= 0:
            raise BywayError(f"--{name}: expected a positive integer")
    if args.concurrency > MAX_CONCURRENCY:
        raise BywayError(f"--concurrency: at most {MAX_CONCURRENCY} (the SDK's connection pool)")
    if args.warmup < 0 or (args.runs is not None and args.runs < args.rounds):
        raise BywayError("--warmup: zero or more; --runs: at least one per round")
    if args.duration <= 0 or (args.langgraph_jobs is not None and args.langgraph_jobs <= 0):
        raise BywayError("--duration and --langgraph-jobs: expected positive numbers")
    unknown = set(args.systems.split(",")) - {BYWAY, LANGGRAPH_DEV}
    if unknown or not args.systems:
        raise BywayError(
            f"--systems: expected {BYWAY} and/or {LANGGRAPH_DEV}, got {args.systems!r}"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _check(args)
    except BywayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    base = RedisSettings.from_url(args.redis_url) if args.redis_url else RedisSettings.from_env()
    settings = replace(base, namespace=f"{base.namespace}:bench-http-{secrets.token_hex(4)}")
    if BYWAY in args.systems.split(",") and not args.byway_url:
        # the embedded server when no URL is set: started once, shared with the children
        settings = replace(settings, url=settings.resolved_url())
        say(f"byway: redis {settings.describe()}, namespace {settings.namespace}")
    try:
        figures, result = asyncio.run(_bench(args, settings))
    except (RunFailed, BywayError, RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    c = result["config"]
    print(
        f"concurrency {c['concurrency']}, byway workers {c['byway_workers']}, "
        f"langgraph dev jobs {c['langgraph_jobs']}, {c['rounds']} rounds"
    )
    print(table(figures, (BYWAY, LANGGRAPH_DEV) if result["ratio"] else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
