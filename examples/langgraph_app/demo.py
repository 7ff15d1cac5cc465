"""``make demo``: the LangChain v1 travel agent of app.py served by a Byway worker process.

Starts the embedded Redis (or uses BYWAY_REDIS_URL) and one worker, asks for a trip,
streams the run — tool calls, tokens — and answers the booking's approval (you type
``approve``, ``reject`` or the middleware's JSON decisions on a terminal; otherwise the
demo approves). The run waits for the answer in Redis, not in the worker.

    python -m examples.langgraph_app.demo ["Plan a trip to Porto"]
"""

from __future__ import annotations

import asyncio
import sys

from byway import RedisSettings
from examples._demo import converse, serving, unique


def main() -> int:
    question = " ".join(sys.argv[1:]) or "Plan a trip to Porto"
    settings = RedisSettings.from_env()
    print(f"redis: {settings.describe()}", file=sys.stderr)
    travel = unique("travel")
    with serving(settings, ("examples.langgraph_app.app:graph", travel)) as workers:
        # "approve" is read as {"decisions": [{"type": "approve"}]} by the LangGraph worker
        return asyncio.run(
            converse(settings, workers, [travel], question, default_answer="approve")
        )


if __name__ == "__main__":
    sys.exit(main())
