"""Ask the planner for a plan, answer its question, print the result.

python -m examples.orchestration.client "pricing, hiring, roadmap" [--yes]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

from byway import EventType, GatewayClient


async def main(topics: str, auto_yes: bool) -> int:
    async with GatewayClient.from_url() as client:
        session = f"plan-{uuid.uuid4().hex[:8]}"
        sent = (await client.send_message("planner", session, topics)).raise_for_status()
        async for event in client.stream(session, until_message_id=sent.message_id):
            if event.kind == "chunk":
                print(event.data["content"], end="", flush=True)
            elif event.kind == "state":
                print(f"\n[{event.source_agent_type}] {event.data['state']}")
            elif event.kind == "ask_user":
                print(f"\n[{event.source_agent_type}] {event.data['prompt']}")
                answer = "yes" if auto_yes else await asyncio.to_thread(input, "> ")
                await client.resume(session, event.message_id, answer)
            elif event.event_type == EventType.FINAL_ANSWER:
                print(f"\n[{event.data['status']}] {event.data['content']}")
                return 0 if event.data["status"] == "COMPLETED" else 1
    return 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("topics", nargs="?", default="pricing, hiring, roadmap")
    parser.add_argument("--yes", action="store_true", help="approve without asking")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.topics, args.yes)))
