"""A LangGraph supervisor calling an ADK specialist that asks the traveller, each in its
own worker process (agents.py). The question comes from the specialist, two levels down;
the answer goes back to it, and its reply back to the supervisor.

    python -m examples.mixed_tree.demo ["Plan a weekend in Lisbon"]
"""

from __future__ import annotations

import asyncio
import os
import sys

from byway import RedisSettings
from examples._demo import converse, serving, unique


def main() -> int:
    question = " ".join(sys.argv[1:]) or "Plan a weekend in Lisbon"
    settings = RedisSettings.from_env()
    print(f"redis: {settings.describe()}", file=sys.stderr)
    supervisor, specialist = unique("supervisor"), unique("booking-specialist")
    os.environ["BYWAY_EXAMPLE_SPECIALIST"] = specialist  # whom the supervisor's tool calls
    with serving(
        settings,
        ("examples.mixed_tree.agents:supervisor", supervisor),
        ("examples.mixed_tree.agents:specialist", specialist),
    ) as workers:
        return asyncio.run(
            converse(
                settings, workers, [supervisor, specialist], question, default_answer="May 3-5"
            )
        )


if __name__ == "__main__":
    sys.exit(main())
