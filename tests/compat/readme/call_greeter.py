# Calls the "greeter" service four times through DiscoveryHttpClient: round-robin over
# its live instances, the next one when a call fails.
import asyncio

from byway import DiscoveryClient, DiscoveryHttpClient, close_redis, init_redis


async def main():
    init_redis(host="localhost", port=6379)
    discovery = DiscoveryClient()
    print("instances:", len(await discovery.get_instances("greeter")))
    http = DiscoveryHttpClient(discovery)
    for _ in range(4):
        response = await http.get("greeter", "/")
        print(response.text)
    await http.aclose()
    await discovery.close()
    await close_redis()


asyncio.run(main())
