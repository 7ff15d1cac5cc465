# Not from the README (it names ServiceRegistry, DiscoveryClient and DiscoveryHttpClient
# without code): one instance of the "greeter" HTTP service, registered with
# by-framework's calls. python greeter.py NAME
import asyncio
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from byway import ServiceRegistry, init_redis

NAME = sys.argv[1]


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = NAME.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


async def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    init_redis(host="localhost", port=6379)
    registry = ServiceRegistry()
    await registry.register("greeter", host="127.0.0.1", port=server.server_port, heartbeat_interval=5)
    print(f"registered {NAME}", flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
