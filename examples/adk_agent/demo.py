"""The ADK support agent of agent.py served by a Byway worker process.

Starts the embedded Redis (or uses BYWAY_REDIS_URL) and one worker, asks for a refund,
streams the run — tool calls, tokens — and answers ADK's confirmation of the refund (you
type it on a terminal; otherwise the demo approves). The run waits for the answer in
Redis, not in the worker.

    python -m examples.adk_agent.demo ["Please refund my order A1002"]
"""

from __future__ import annotations

import asyncio
import sys

from byway import RedisSettings
from examples._demo import converse, serving, unique


def main() -> int:
    question = " ".join(sys.argv[1:]) or "Please refund my order A1002"
    settings = RedisSettings.from_env()
    print(f"redis: {settings.describe()}", file=sys.stderr)
    support = unique("support")
    with serving(settings, ("examples.adk_agent.agent:root_agent", support)) as workers:
        return asyncio.run(converse(settings, workers, [support], question))


if __name__ == "__main__":
    sys.exit(main())
