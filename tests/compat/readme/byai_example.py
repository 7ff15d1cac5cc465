# The README's "ByaiGatewayClient" fragment in one async main(), with the Quick start's
# redis and registry.
import asyncio

from byway import BaiYingMessage, ByaiGatewayClient, WorkerRegistry, init_redis


async def main():
    redis = init_redis(host="localhost", port=6379)
    registry = WorkerRegistry(redis_client=redis)

    client = ByaiGatewayClient(redis_client=redis, registry=registry)

    # Automatically encodes BaiYingMessage content
    resp = await client.send_message(
        target_agent_type="chat_agent",
        session_id="sess-001",
        content=BaiYingMessage(role="user", content="Hello"),
    )
    print(f"Sent: {resp.message_id}")


asyncio.run(main())
