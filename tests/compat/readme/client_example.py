# The README's "GatewayClient" and "Interceptors" fragments, in one async main() so the
# awaits run; the interceptor is added before the send it should see.
import asyncio

from byway import GatewayClient, WorkerRegistry, init_redis


class AuthInterceptor:
    async def before_send(self, command, header):
        header.metadata["auth_token"] = "..."
        return command, header


async def main():
    redis = init_redis(host="localhost", port=6379)
    client = GatewayClient(redis_client=redis, registry=WorkerRegistry(redis_client=redis))
    client.add_interceptor(AuthInterceptor())

    # Send to an agent type
    resp = await client.send_message(
        target_agent_type="my_agent",
        session_id="sess-001",
        content="Your task content",
        user_code="user-123",
        metadata={"priority": "high"},
    )

    # Cancel a task (including cascade through sub-tasks)
    await client.cancel_task(
        message_id=resp.message_id,
        session_id="sess-001",
        reason="User requested",
    )
    print(f"Sent and cancelled: {resp.message_id}")


asyncio.run(main())
