"""The adapter's overhead: an ADK agent run directly, and through Byway.

    python -m byway_adk.bench --redis-url redis://127.0.0.1:6379
    byway bench --target byway_adk.bench:echo_agent --redis-url redis://127.0.0.1:6379

The first runs the agent through ADK's ``Runner`` in this process with the Redis session
service (what the agent costs on its own, its session included); the second sends the
same agent's tasks through Byway worker processes. The difference per task is the adapter
plus the scheduler.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.genai import types

from byway import RedisSettings
from byway.bench import direct_figures
from byway_adk.sessions import RedisSessionService


class _Ok(BaseLlm):
    """A model that answers "ok" at once, with token usage (as a real one reports)."""

    model: str = "ok"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        yield LlmResponse(
            content=types.Content(role="model", parts=[types.Part(text="ok")]),
            usage_metadata=types.GenerateContentResponseUsageMetadata(
                prompt_token_count=1, candidates_token_count=1, total_token_count=2
            ),
        )


#: one model call that answers "ok": the agent both measurements run
echo_agent = LlmAgent(name="echo", model=_Ok(), instruction="Answer ok.")


async def _direct(settings: RedisSettings, tasks: int, concurrency: int) -> dict[str, float]:
    """Throughput over ``concurrency`` sessions, each sending its next message when the
    last one ended; latency one message at a time on fresh sessions."""
    redis = settings.client()
    service = RedisSessionService(redis, namespace=f"bench-adk-{uuid.uuid4().hex[:6]}")
    runner = Runner(agent=echo_agent, app_name="echo", session_service=service)
    message = types.Content(role="user", parts=[types.Part(text="ping")])

    async def once(thread: str, n: int) -> None:
        session_id = f"{thread}-{n}"  # a new session per message: its history stays short
        if await service.get_session(app_name="echo", user_id="u", session_id=session_id) is None:
            await service.create_session(app_name="echo", user_id="u", session_id=session_id)
        async for _ in runner.run_async(user_id="u", session_id=session_id, new_message=message):
            pass

    try:
        return await direct_figures(
            once, tasks=tasks, concurrency=concurrency, rounds=3, per_round=67, warmup=30
        )
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{service.namespace}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await redis.delete(*keys[i : i + 500])
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m byway_adk.bench", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--redis-url", help="default: $BYWAY_REDIS_URL, else embedded")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    settings = (
        RedisSettings.from_url(args.redis_url) if args.redis_url else RedisSettings.from_env()
    )
    result: Any = asyncio.run(_direct(settings, args.tasks, args.concurrency))
    print("agent run directly (ADK Runner, RedisSessionService, a new session per message):")
    print(
        f"  {result['tasks_per_s']:.0f} tasks/s over {args.concurrency} sessions; "
        f"one at a time: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
