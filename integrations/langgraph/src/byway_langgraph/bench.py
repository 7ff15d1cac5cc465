"""The adapter's overhead: a one-node graph called directly, and through Byway.

    python -m byway_langgraph.bench --redis-url redis://127.0.0.1:6379
    byway bench --target byway_langgraph.bench:one_node_graph --redis-url redis://127.0.0.1:6379

The first runs ``graph.ainvoke`` in this process with the Redis checkpointer (what a
graph costs on its own, state included); the second sends the same graph's tasks through
Byway worker processes. The difference per task is the adapter plus the scheduler.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from byway import RedisSettings
from byway.bench import direct_figures
from byway_langgraph.checkpoint import RedisCheckpointSaver


async def _answer(state: MessagesState) -> dict[str, Any]:
    return {"messages": [AIMessage(content="ok")]}


def _build() -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("answer", _answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder.compile()


#: one node that answers "ok": the graph both measurements run
one_node_graph = _build()


async def _direct(
    settings: RedisSettings, tasks: int, concurrency: int, rounds: int, per_round: int
) -> dict[str, float]:
    """The shape of ``byway bench``: throughput over ``concurrency`` threads, each sending
    its next task when the last one ended; latency one task at a time on one thread (a
    thread's message list grows with every task, in both measurements alike)."""
    saver = RedisCheckpointSaver.from_settings(settings)
    graph = one_node_graph.copy(update={"checkpointer": saver})
    run = uuid.uuid4().hex[:8]

    async def once(thread_id: str, n: int) -> None:
        thread = {"configurable": {"thread_id": f"bench-{run}-{thread_id}"}}
        await graph.ainvoke({"messages": [("user", "ping")]}, thread)

    try:
        return await direct_figures(
            once, tasks=tasks, concurrency=concurrency, rounds=rounds, per_round=per_round
        )
    finally:
        await saver.redis.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m byway_langgraph.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--redis-url", help="default: $BYWAY_REDIS_URL, else embedded")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-tasks", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    settings = (
        RedisSettings.from_url(args.redis_url) if args.redis_url else RedisSettings.from_env()
    )
    per_round = args.latency_tasks // args.rounds
    result = asyncio.run(_direct(settings, args.tasks, args.concurrency, args.rounds, per_round))
    print("graph called directly (RedisCheckpointSaver):")
    print(
        f"  {result['tasks_per_s']:.0f} tasks/s over {args.concurrency} threads; "
        f"one at a time ({per_round} per thread): p50 {result['p50_ms']:.2f} ms, "
        f"p99 {result['p99_ms']:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
