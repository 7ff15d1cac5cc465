"""The client side of ``python -m byway_langgraph.bench_http``: LangGraph's own SDK
client (``langgraph_sdk.get_client``) driving a LangGraph Server API at a base URL, the
same code for every server; the phases (C runs in flight for D seconds or K runs), the
figures and the table.

One run is one ``runs.stream`` on a new thread (``if_not_exists="create"``: one request),
stream modes ``values`` and ``messages-tuple``: the time to first token is from the call
to the first AI message chunk with text, the run's latency from the call to the stream's
end. The streamed text must be the graph's reply, else the run counts as an error.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamMode

__all__ = ["Figures", "Phase", "RunFailed", "Target", "measure", "one_run", "say", "table"]

INPUT: dict[str, Any] = {"messages": [{"role": "user", "content": "Say something short."}]}
STREAM_MODE: list[StreamMode] = ["values", "messages-tuple"]
MAX_CONCURRENCY = 100  # the SDK's httpx pool holds 100 connections; more would wait for one


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class RunFailed(Exception):
    """A run that answered with an error event, a wrong reply or no token at all."""


@dataclass
class Target:
    """One server under test: its name in the table, base URL and assistant (graph) id."""

    name: str
    url: str
    assistant: str
    client: LangGraphClient | None = None

    def sdk(self) -> LangGraphClient:
        if self.client is None:
            self.client = get_client(url=self.url)
        return self.client

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None


def _token(data: Any) -> str:
    """The text of a ``messages-tuple`` part's message when it is an AI chunk, else ''."""
    if not isinstance(data, list | tuple) or not data or not isinstance(data[0], dict):
        return ""
    message = data[0]
    if message.get("type") not in ("AIMessageChunk", "ai"):
        return ""
    content = message.get("content")
    return content if isinstance(content, str) else ""


async def one_run(target: Target, reply: str) -> tuple[float, float]:
    """Stream one run on a new thread: (time to first token, run latency) in seconds."""
    client = target.sdk()
    started = time.perf_counter()
    first: float | None = None
    tokens: list[str] = []
    async for part in client.runs.stream(
        str(uuid.uuid4()),
        target.assistant,
        input=INPUT,
        stream_mode=STREAM_MODE,
        if_not_exists="create",
    ):
        if part.event == "error":
            raise RunFailed(f"error event: {str(part.data)[:300]}")
        if part.event == "messages" and (text := _token(part.data)):
            if first is None:
                first = time.perf_counter()
            tokens.append(text)
    ended = time.perf_counter()
    if first is None:
        raise RunFailed("the stream ended without a token")
    if "".join(tokens) != reply:
        raise RunFailed(f"streamed {''.join(tokens)[:200]!r}, expected {reply!r}")
    return first - started, ended - started


@dataclass
class Phase:
    """One phase of one target: its successful runs' samples, errors and wall time."""

    elapsed: float = 0.0
    ttft: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    @property
    def rate(self) -> float:
        return len(self.latency) / self.elapsed if self.elapsed else 0.0


async def run_phase(
    target: Target, reply: str, concurrency: int, *, runs: int | None, seconds: float | None
) -> Phase:
    """``concurrency`` loops, each starting its next run when the last one ended, until
    ``runs`` runs have started or ``seconds`` have passed."""
    phase = Phase()
    remaining = runs
    deadline = time.perf_counter() + seconds if seconds is not None else math.inf

    async def loop() -> None:
        nonlocal remaining
        while time.perf_counter() < deadline:
            if remaining is not None:
                if remaining <= 0:
                    return
                remaining -= 1
            try:
                ttft, latency = await one_run(target, reply)
            except Exception as exc:  # an HTTP error, an error event, a wrong reply
                phase.errors += 1
                phase.first_error = phase.first_error or f"{type(exc).__name__}: {exc}"[:500]
                continue
            phase.ttft.append(ttft)
            phase.latency.append(latency)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    phase.elapsed = time.perf_counter() - started
    return phase


def _ms(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return 1000 * ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class Figures:
    """One target's numbers: runs/s is the median over the rounds, the percentiles are
    over every successful run of every round."""

    runs: int
    errors: int
    runs_per_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    run_p50_ms: float
    run_p99_ms: float
    first_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _figures(phases: list[Phase]) -> Figures:
    ttft = [x for p in phases for x in p.ttft]
    latency = [x for p in phases for x in p.latency]
    return Figures(
        runs=len(latency),
        errors=sum(p.errors for p in phases),
        runs_per_s=statistics.median(p.rate for p in phases),
        ttft_p50_ms=_ms(ttft, 0.50),
        ttft_p99_ms=_ms(ttft, 0.99),
        run_p50_ms=_ms(latency, 0.50),
        run_p99_ms=_ms(latency, 0.99),
        first_error=next((p.first_error for p in phases if p.first_error), ""),
    )


async def measure(
    targets: list[Target],
    reply: str,
    *,
    concurrency: int,
    warmup: int,
    rounds: int,
    runs: int | None,
    seconds: float | None,
) -> dict[str, Figures]:
    """Warm each target up, then alternate them round by round (so a noisy machine slows
    them alike); raises when a target's warm-up had no successful run."""
    for target in targets:
        if warmup:
            say(f"{target.name}: warm-up ({warmup} runs, {concurrency} at once)")
            phase = await run_phase(target, reply, concurrency, runs=warmup, seconds=None)
            if not phase.latency:
                raise RunFailed(f"{target.name}: every warm-up run failed: {phase.first_error}")
    phases: dict[str, list[Phase]] = {t.name: [] for t in targets}
    for r in range(1, rounds + 1):
        for target in targets:
            share = None if runs is None else runs // rounds + (r <= runs % rounds)
            span = None if seconds is None else seconds / rounds
            phase = await run_phase(target, reply, concurrency, runs=share, seconds=span)
            phases[target.name].append(phase)
            say(
                f"round {r}/{rounds} {target.name}: {len(phase.latency)} runs in "
                f"{phase.elapsed:.1f} s, {phase.rate:.1f} runs/s, TTFT p50 "
                f"{_ms(phase.ttft, 0.5):.1f} ms"
                + (f", {phase.errors} errors" if phase.errors else "")
            )
    return {name: _figures(p) for name, p in phases.items()}


COLUMNS = (
    ("runs/s", "runs_per_s", 1),
    ("TTFT p50 ms", "ttft_p50_ms", 1),
    ("TTFT p99 ms", "ttft_p99_ms", 1),
    ("run p50 ms", "run_p50_ms", 1),
    ("run p99 ms", "run_p99_ms", 1),
)


def ratios(figures: dict[str, Figures], top: str, bottom: str) -> dict[str, float]:
    """``top`` over ``bottom`` for each column (runs/s above 1: ``top`` is faster;
    milliseconds below 1: ``top`` is faster)."""
    a, b = figures[top].as_dict(), figures[bottom].as_dict()
    return {key: (a[key] / b[key] if b[key] else math.nan) for _, key, _ in COLUMNS}


def table(figures: dict[str, Figures], ratio: tuple[str, str] | None) -> str:
    """A plain-text table: one row per target, then the ratio row when both ran."""
    width = max(14, *(len(name) + 2 for name in figures))
    head = f"{'system':<{width}}" + "".join(f"{title:>13}" for title, _, _ in COLUMNS)
    lines = [head + f"{'runs':>8}{'errors':>8}"]
    for name, fig in figures.items():
        values = fig.as_dict()
        cells = "".join(f"{values[key]:>13.{digits}f}" for _, key, digits in COLUMNS)
        lines.append(f"{name:<{width}}{cells}{fig.runs:>8}{fig.errors:>8}")
    if ratio:
        r = ratios(figures, *ratio)
        cells = "".join(f"{r[key]:>13.2f}" for _, key, _ in COLUMNS)
        lines.append(f"{'ratio':<{width}}{cells}")
        lines.append(f"(ratio: {ratio[0]} / {ratio[1]})")
    for name, fig in figures.items():
        if fig.first_error:
            lines.append(f"{name}: first error: {fig.first_error}")
    return "\n".join(lines)
