"""``byway bench``: end-to-end throughput and latency beside a raw redis-py floor.

Two systems go through the same client harness, with the same number of worker processes:

- **floor**: the least work for the round trip. The client XADDs ``{s, m}`` to one stream;
  a floor worker process XREADGROUPs batches and, per entry, pipelines two XADDs to the
  session stream (a final and an end entry) and the XACK.
- **byway**: ``GatewayClient.send_message(require_online_worker=True)`` to a no-op
  ``@agent`` served by ``byway worker`` processes; the client decodes the session's events
  until it sees the task's ``finalAnswer``.
- **signed** (``--signing``): the same as byway, with every command signed and verified
  (``BYWAY_SIGNING_KEYS`` set on the client and its own worker processes).

The harness keeps K sessions busy (send, wait for the final event, send the next) with one
reader doing ``XREAD BLOCK`` over every session stream, then runs one task at a time for
latency (send → final event seen by the client). Both systems' workers stay up for the
whole row and the phases alternate in rounds (floor, byway, floor, byway...), so a noisy
machine slows both alike. Everything lives under a random sub-namespace, deleted at the end.

This module starts the worker processes and runs the command; the harness (the systems,
the phases and the figures) is :mod:`byway._bench_harness`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from typing import Any

import redis.asyncio as aioredis

from byway._bench_harness import BywaySystem, Floor, Result, System, direct_figures, measure, say
from byway._process import stop_processes
from byway.app import worker_command, worker_env
from byway.client import GatewayClient
from byway.errors import BywayError, WorkerError
from byway.settings import RedisSettings
from byway.signing import ENV_KEYS, Signer
from byway.worker import agent

__all__ = ["Result", "add_arguments", "direct_figures", "main", "noop_agent"]

READY_TIMEOUT_S = 30.0
FLOOR_GROUP = "floor"


async def _noop(command: Any, context: Any) -> str:
    return "ok"


noop_agent = agent("bench")(_noop)
"""The agent ``byway bench`` measures: answers "ok" at once."""


# -- worker processes --------------------------------------------------------------------


def _spawn(
    stack: contextlib.AsyncExitStack,
    argv: list[str],
    n: int,
    settings: RedisSettings,
    extra_env: dict[str, str] | None = None,
) -> list[subprocess.Popen[bytes]]:
    """Start ``n`` processes of ``argv``, stopped (by pid) when ``stack`` closes; they
    find ``settings``' Redis URL in their environment (never in their argv).

    Each gets its own session, so a Ctrl-C in the terminal reaches only the bench, which
    then stops them with one SIGTERM each.
    """
    env = {**worker_env(settings), **(extra_env or {})}
    procs = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True, env=env)
        for _ in range(n)
    ]
    stack.callback(stop_processes, procs)
    return procs


async def _wait_ready(
    what: str, procs: list[subprocess.Popen[bytes]], count_ready: Callable[[], Awaitable[int]]
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while (ready := await count_ready()) < len(procs):
        if any(p.poll() is not None for p in procs):
            raise WorkerError(f"{what}: a worker process exited during startup")
        if time.monotonic() > deadline:
            raise WorkerError(f"{what}: only {ready} of {len(procs)} workers came up")
        await asyncio.sleep(0.05)


async def _start_floor(
    stack: contextlib.AsyncExitStack,
    settings: RedisSettings,
    workers: int,
    args: argparse.Namespace,
) -> Floor:
    redis = settings.client()
    stack.push_async_callback(redis.aclose)
    floor = Floor(redis, f"{settings.namespace}:floor:w{workers}")
    await redis.xgroup_create(floor.tasks, FLOOR_GROUP, id="0", mkstream=True)
    say(f"floor: starting {workers} worker process(es)")
    procs = _spawn(
        stack,
        [
            sys.executable,
            "-m",
            "byway.bench",
            "--floor-worker",
            floor.tasks,
            str(args.fetch_count),
        ],
        workers,
        settings,
    )

    async def consumers() -> int:
        return len(await redis.xinfo_consumers(floor.tasks, FLOOR_GROUP))

    await _wait_ready("floor", procs, consumers)
    return floor


async def _start_byway(
    stack: contextlib.AsyncExitStack,
    settings: RedisSettings,
    workers: int,
    args: argparse.Namespace,
    signing_key: str = "",
) -> BywaySystem:
    """Byway's client and worker processes; with ``signing_key``, commands are signed."""
    name = "signed" if signing_key else "byway"
    signer = Signer([signing_key]) if signing_key else None
    client = GatewayClient(settings=settings, signer=signer)
    stack.push_async_callback(client.close)
    agent_type = f"bench-{secrets.token_hex(4)}"
    say(f"{name}: starting {workers} worker process(es) for agent type {agent_type}")
    procs = _spawn(
        stack,
        worker_command(
            args.target,
            settings,
            "--agent-type",
            agent_type,
            "--fetch-count",
            str(args.fetch_count),
            "--concurrency",
            str(max(50, args.concurrency)),
        ),
        workers,
        settings,
        {ENV_KEYS: signing_key} if signing_key else None,
    )

    async def online() -> int:
        return sum(agent_type in w.agent_types for w in await client.registry.list_workers())

    await _wait_ready(name, procs, online)
    return BywaySystem(client, agent_type, name)


# -- the floor worker (a separate process: python -m byway.bench --floor-worker ...) -----


async def _floor_worker(stream: str, count: int) -> None:
    # the URL comes through the environment (worker_env): an argv is visible to `ps`
    redis = aioredis.Redis.from_url(os.environ["BYWAY_REDIS_URL"], max_connections=64)
    consumer = f"floor-{secrets.token_hex(4)}"
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    inflight: set[asyncio.Task[None]] = set()

    async def finish(entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        session, token = fields[b"s"], fields[b"m"]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.xadd(session, {"t": b"final", "m": token})
            pipe.xadd(session, {"t": b"end", "m": token})
            pipe.xack(stream, FLOOR_GROUP, entry_id)
            await pipe.execute()

    await redis.xgroup_createconsumer(stream, FLOOR_GROUP, consumer)  # = ready
    while not stop.is_set():
        reply: Any = await redis.xreadgroup(FLOOR_GROUP, consumer, {stream: ">"}, count, block=500)
        for _, entries in reply or ():
            for entry_id, fields in entries:
                task = asyncio.create_task(finish(entry_id, fields))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
    if inflight:
        await asyncio.wait(inflight, timeout=5)
    await redis.aclose()


# -- command -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``byway bench`` (the Redis options are added by the CLI)."""
    add = parser.add_argument
    add(
        "--workers",
        default="1",
        metavar="N[,N...]",
        help="worker processes, one row per count: 1,2 runs both (default 1)",
    )
    add("--tasks", type=int, default=3000, help="throughput-phase tasks per system (3000)")
    add("--concurrency", type=int, default=32, help="sessions in the throughput phase (32)")
    add(
        "--latency-tasks",
        type=int,
        default=500,
        help="latency-phase tasks per system, one at a time (500)",
    )
    add("--warmup", type=int, default=200, help="warm-up tasks per system and row (200)")
    add(
        "--rounds",
        type=int,
        default=3,
        help="alternate floor and byway in this many rounds per phase (3)",
    )
    add(
        "--fetch-count",
        type=int,
        default=10,
        help="entries per worker read, floor and byway alike (10)",
    )
    add(
        "--target",
        default="byway.bench:noop_agent",
        metavar="MODULE:ATTR",
        help="what the byway workers serve: any worker target, e.g. a compiled LangGraph "
        "graph (default: a no-op agent)",
    )
    add(
        "--signing",
        action="store_true",
        help="also measure Byway with signed commands (a random key in BYWAY_SIGNING_KEYS "
        "for its client and worker processes): a third system, 'signed'",
    )
    add("--json", action="store_true", help="print the results as JSON")


def _worker_counts(raw: str) -> list[int]:
    parts = [part.strip() for part in raw.split(",")]
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise BywayError(f"--workers: expected positive integers like 1 or 1,2, got {raw!r}")
    return [int(p) for p in parts]


async def _bench(
    args: argparse.Namespace, settings: RedisSettings, counts: list[int]
) -> list[dict[str, Any]]:
    settings = replace(settings, url=settings.resolved_url())  # the embedded one, started once
    rows: list[dict[str, Any]] = []
    if this := asyncio.current_task():  # SIGTERM: stop the workers and delete keys all the same
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, this.cancel)
    try:
        for workers in counts:
            say(f"--- {workers} worker process(es) each ---")
            async with contextlib.AsyncExitStack() as stack:
                floor = await _start_floor(stack, settings, workers, args)
                systems: list[System] = [floor]
                systems.append(await _start_byway(stack, settings, workers, args))
                if args.signing:
                    key = secrets.token_hex(32)
                    systems.append(await _start_byway(stack, settings, workers, args, key))
                results = await measure(systems, args)
            f, b = results["floor"], results["byway"]
            row: dict[str, Any] = {
                "workers": workers,
                "floor": asdict(f),
                "byway": asdict(b),
                "throughput_ratio": b.throughput / f.throughput,
                "p50_ratio": b.p50_ms / f.p50_ms,
            }
            if "signed" in results:
                signed = results["signed"]
                row["signed"] = asdict(signed)
                row["signed_throughput_ratio"] = signed.throughput / f.throughput
                row["signed_p50_ratio"] = signed.p50_ms / f.p50_ms
            rows.append(row)
    finally:
        await _cleanup(settings)
    return rows


async def _cleanup(settings: RedisSettings) -> None:
    """Delete every key of this run's random namespace (floor keys included)."""
    redis = settings.client()
    try:
        keys = [key async for key in redis.scan_iter(match=f"{settings.namespace}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await redis.delete(*keys[i : i + 500])
    finally:
        await redis.aclose()


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'workers':<9}{'system':<8}{'tasks/s':<9}{'p50 ms':<8}p99 ms"]
    for row in rows:
        n = str(row["workers"])
        for name in ("floor", "byway", "signed"):
            if name not in row:
                continue
            tput, p50, p99 = (row[name][k] for k in ("throughput", "p50_ms", "p99_ms"))
            lines.append(f"{n:<9}{name:<8}{tput:<9.0f}{p50:<8.2f}{p99:.2f}")
        lines.append(f"{n:<9}{'ratio':<8}{row['throughput_ratio']:<9.2f}{row['p50_ratio']:.2f}")
        if "signed" in row:
            tput_ratio, p50_ratio = row["signed_throughput_ratio"], row["signed_p50_ratio"]
            lines.append(f"{n:<9}{'ratio s':<8}{tput_ratio:<9.2f}{p50_ratio:.2f}")
    return "\n".join(lines)


def main(args: argparse.Namespace, settings: RedisSettings) -> int:
    """Run the benchmark under a random sub-namespace of ``settings.namespace``."""
    for name in ("tasks", "concurrency", "latency_tasks", "rounds", "fetch_count"):
        if getattr(args, name) <= 0:
            raise BywayError(f"--{name.replace('_', '-')}: expected a positive integer")
    if args.warmup < 0:
        raise BywayError("--warmup: expected zero or more")
    if args.tasks < args.rounds or args.latency_tasks < args.rounds:
        raise BywayError("--tasks and --latency-tasks: expected at least one task per round")
    counts = _worker_counts(args.workers)
    settings = replace(settings, namespace=f"{settings.namespace}:bench-{secrets.token_hex(4)}")
    say(f"redis {settings.describe()}, namespace {settings.namespace}")
    try:
        rows = asyncio.run(_bench(args, settings, counts))
    except asyncio.CancelledError:
        say("stopped by SIGTERM")
        return 143
    if args.json:
        print(
            json.dumps(
                {
                    "namespace": settings.namespace,
                    "tasks": args.tasks,
                    "concurrency": args.concurrency,
                    "latency_tasks": args.latency_tasks,
                    "rounds": args.rounds,
                    "rows": rows,
                },
                indent=2,
            )
        )
    else:
        print(_table(rows))
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--floor-worker"]:
    asyncio.run(_floor_worker(sys.argv[2], int(sys.argv[3])))
