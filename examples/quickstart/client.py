"""Send one message to the greeter and print its answer as it streams.

python -m examples.quickstart.client Ada
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from byway import EventType, GatewayClient


async def main(name: str) -> int:
    async with GatewayClient.from_url() as client:  # BYWAY_REDIS_URL, else the embedded Redis
        session = f"quickstart-{uuid.uuid4().hex[:8]}"
        sent = (await client.send_message("greeter", session, name)).raise_for_status()
        async for event in client.stream(session, until_message_id=sent.message_id):
            if event.event_type == EventType.ANSWER_DELTA:
                print(event.data["content"], end="", flush=True)
            elif event.event_type == EventType.FINAL_ANSWER:
                print(f"\n[{event.data['status']}]")
                return 0 if event.data["status"] == "COMPLETED" else 1
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "world")))
