"""The client harness of ``byway bench``: the two systems it drives (the redis-py floor
and Byway), the phases that keep K sessions busy or run one task at a time, and the
figures (median throughput over the rounds, p50 and p99 latency)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis

from byway.client import GatewayClient
from byway.errors import WorkerError
from byway.protocol import EventType, decode_event, new_id

__all__ = ["BywaySystem", "Floor", "Result", "System", "direct_figures", "measure", "say"]

FINAL_TIMEOUT_S = 30.0


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# -- the two systems ---------------------------------------------------------------------


class System(Protocol):
    name: str
    redis: aioredis.Redis

    def stream_of(self, session: str) -> str: ...

    async def send(self, session: str, token: str) -> None: ...

    def is_final(self, fields: dict[bytes, bytes], token: str) -> bool: ...


class Floor:
    name = "floor"

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.tasks = f"{prefix}:tasks"

    def stream_of(self, session: str) -> str:
        return f"{self.prefix}:session:{session}"

    async def send(self, session: str, token: str) -> None:
        await self.redis.xadd(self.tasks, {"s": self.stream_of(session), "m": token})

    def is_final(self, fields: dict[bytes, bytes], token: str) -> bool:
        return fields.get(b"t") == b"final" and fields.get(b"m") == token.encode()


class BywaySystem:
    def __init__(self, client: GatewayClient, agent_type: str, name: str = "byway") -> None:
        self.name = name
        self.client = client
        self.redis = client.redis
        self.agent_type = agent_type

    def stream_of(self, session: str) -> str:
        return self.client.keys.session_stream(session)

    async def send(self, session: str, token: str) -> None:
        resp = await self.client.send_message(
            self.agent_type, session, "ping", message_id=token, require_online_worker=True
        )
        resp.raise_for_status()

    def is_final(self, fields: dict[bytes, bytes], token: str) -> bool:
        event = decode_event(fields[b"data"])
        return event.event_type == EventType.FINAL_ANSWER and event.message_id == token


# -- the client harness (shared by both systems) -----------------------------------------

_Waiting = dict[str, tuple[str, "asyncio.Future[float]"]]


async def _read_loop(system: System, last: dict[str, bytes | str], waiting: _Waiting) -> None:
    """One XREAD BLOCK over every session stream; resolves each task's future on its final."""
    while True:
        reply: Any = await system.redis.xread(last, count=100, block=1000)  # type: ignore[arg-type]
        seen = time.perf_counter()
        for key_raw, entries in reply or ():
            key = key_raw.decode()
            for entry_id, fields in entries:
                last[key] = entry_id
                pending = waiting.get(key)
                if pending is not None and system.is_final(fields, pending[0]):
                    del waiting[key]
                    if not pending[1].done():  # done: cancelled by a timeout or Ctrl-C
                        pending[1].set_result(seen)


async def _run_phase(system: System, sessions: int, total: int) -> tuple[float, list[float]]:
    """Run ``total`` tasks over ``sessions`` sequential sessions: (seconds, latencies in s)."""
    names = [f"bench-{secrets.token_hex(6)}" for _ in range(sessions)]
    last: dict[str, bytes | str] = {system.stream_of(n): "0-0" for n in names}
    waiting: _Waiting = {}
    latencies: list[float] = []
    remaining = total
    loop = asyncio.get_running_loop()

    async def session_loop(name: str) -> None:
        nonlocal remaining
        key = system.stream_of(name)
        while remaining > 0:
            remaining -= 1
            token = new_id("msg")
            waiting[key] = (token, future := loop.create_future())
            sent = time.perf_counter()
            await system.send(name, token)
            try:  # not wait_for: on 3.11 it can swallow a cancel (Ctrl-C) racing the result
                async with asyncio.timeout(FINAL_TIMEOUT_S):
                    seen = await future
            except TimeoutError:
                raise WorkerError(
                    f"{system.name}: no final event for {token} within {FINAL_TIMEOUT_S:.0f}s"
                ) from None
            latencies.append(seen - sent)

    reader = asyncio.create_task(_read_loop(system, last, waiting))
    started = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as group:
            for name in names:
                group.create_task(session_loop(name))
    except BaseExceptionGroup as exc:
        raise exc.exceptions[0] from None
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    return time.perf_counter() - started, latencies


@dataclass(frozen=True, slots=True)
class Result:
    """One system's numbers in one row (throughput: median over the rounds)."""

    throughput: float
    p50_ms: float
    p99_ms: float


def _percentile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


async def direct_figures(
    once: Callable[[str, int], Awaitable[object]],
    *,
    tasks: int,
    concurrency: int,
    rounds: int,
    per_round: int,
    warmup: int = 50,
) -> dict[str, float]:
    """What a framework costs on its own, in ``byway bench``'s shape, for the adapters'
    benches: ``once(thread, n)`` runs the n-th task of ``thread`` in this process.
    Throughput: ``tasks`` over ``concurrency`` threads, each sending its next task when
    the last one ended. Latency: ``rounds`` threads of ``per_round`` tasks, one at a time.
    """

    async def timed(thread: str, n: int) -> float:
        started = time.perf_counter()
        await once(thread, n)
        return time.perf_counter() - started

    for i in range(warmup):
        await timed(f"warm-{i % 8}", i)
    remaining = tasks

    async def thread(name: str) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await timed(name, remaining)

    started = time.perf_counter()
    await asyncio.gather(*(thread(f"t{i}") for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies = [await timed(f"latency-{r}", n) for r in range(rounds) for n in range(per_round)]
    return {
        "tasks_per_s": tasks / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": _percentile_ms(latencies, 0.99),
    }


async def measure(systems: list[System], args: argparse.Namespace) -> dict[str, Result]:
    """Warm up, then alternate the systems' throughput and latency phases in rounds."""
    rounds = args.rounds
    rates: dict[str, list[float]] = {s.name: [] for s in systems}
    latencies: dict[str, list[float]] = {s.name: [] for s in systems}
    for system in systems:
        if args.warmup:
            say(f"{system.name}: warm-up ({args.warmup} tasks)")
            await _run_phase(system, args.concurrency, args.warmup)
    for r in range(1, rounds + 1):
        for system in systems:
            tasks = args.tasks // rounds + (r <= args.tasks % rounds)
            elapsed, _ = await _run_phase(system, args.concurrency, tasks)
            rates[system.name].append(tasks / elapsed)
            say(
                f"round {r}/{rounds} {system.name} throughput phase: {tasks} tasks, "
                f"{args.concurrency} sessions: {tasks / elapsed:.0f} tasks/s"
            )
    for r in range(1, rounds + 1):
        for system in systems:
            tasks = args.latency_tasks // rounds + (r <= args.latency_tasks % rounds)
            _, phase = await _run_phase(system, 1, tasks)
            latencies[system.name] += phase
            say(
                f"round {r}/{rounds} {system.name} latency phase: {tasks} tasks one at a time: "
                f"p50 {_percentile_ms(phase, 0.5):.2f} ms"
            )
    return {
        name: Result(
            statistics.median(rates[name]),
            _percentile_ms(latencies[name], 0.50),
            _percentile_ms(latencies[name], 0.99),
        )
        for name in rates
    }
