"""A real browser's ``EventSource`` survives the death of the replica serving it.

Chromium (the machine's own, ``/usr/bin/chromium``, headless, driven by Playwright) opens
a page from a loopback HTTP server of its own origin. The page sends a message through a
load balancer (a TCP proxy written here: it forwards to replica A while A accepts
connections, else to replica B) and reads the answer with ``EventSource`` and the stream
token. Mid-answer replica A is SIGKILLed: the browser reconnects by itself, with
``Last-Event-ID``, through the proxy to B, and the text the page collected is the whole
answer, each token once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from byway import GatewayClient
from tests.agents.server_agents import tokens
from tests.conftest import free_port, wait_online
from tests.server.conftest import ACME_KEY

CHROMIUM = "/usr/bin/chromium"
TOKENS = 40
#: seconds between tokens: the answer takes about six seconds
DELAY = 0.15

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)",
)

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>byway stream</title>
<pre id="answer"></pre>
<script>
window.text = ""; window.ids = []; window.opens = 0; window.errors = 0;
window.finalText = null; window.ended = null;
async function start(api, key, content) {
  const r = await fetch(api + "/v1/messages", {
    method: "POST",
    headers: {"X-Api-Key": key, "Content-Type": "application/json"},
    body: JSON.stringify({agent_type: "streamer", content: content}),
  });
  if (r.status !== 202) throw new Error("send: " + r.status + " " + await r.text());
  const sent = await r.json();
  const url = api + sent.events_url + "&stream_token=" + encodeURIComponent(sent.stream_token);
  const source = new EventSource(url);
  source.onopen = () => { window.opens += 1; };
  source.onerror = () => { window.errors += 1; };
  source.addEventListener("answerDelta", (e) => {
    window.ids.push(e.lastEventId);
    window.text += JSON.parse(e.data).data.content;
    document.getElementById("answer").textContent = window.text;
  });
  source.addEventListener("finalAnswer", (e) => {
    window.finalText = JSON.parse(e.data).data.content;
  });
  source.addEventListener("appStreamResponse", (e) => {
    window.ended = JSON.parse(e.data).data.status;
    source.close();
  });
  return sent.message_id;
}
</script>
"""


class Balancer:
    """A TCP load balancer: each connection goes to the first upstream that accepts it."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.connections: dict[int, int] = dict.fromkeys(ports, 0)
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        for port in self.ports:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            self.connections[port] += 1
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            return
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Balancer]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()


@contextlib.contextmanager
def page_server() -> Iterator[str]:
    """The page, from a loopback HTTP server of its own (another origin than the API)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_the_browser_continues_on_another_replica(
    serve, workers, client: GatewayClient, tmp_path: Path
) -> None:
    """(The page as it looked at the end: ``answer.png`` in the test's tmp_path.)"""
    from playwright.async_api import async_playwright

    with page_server() as origin:
        workers("streamer")
        replica_a, url_a = serve("--cors-origin", origin)
        _, url_b = serve("--cors-origin", origin)
        port_a, port_b = (int(u.rsplit(":", 1)[1]) for u in (url_a, url_b))
        await wait_online(client, "streamer")
        async with Balancer([port_a, port_b]).running() as balancer, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = await browser.new_page()
                await page.goto(origin + "/")
                api = f"http://127.0.0.1:{balancer.port}"
                await page.evaluate(
                    "([api, key, content]) => start(api, key, content)",
                    [api, ACME_KEY, f"{TOKENS}:{DELAY}"],
                )
                await page.wait_for_function("window.ids.length >= 8", timeout=60_000)
                replica_a.send_signal(signal.SIGKILL)
                replica_a.wait()
                seen_at_kill = await page.evaluate("window.ids.length")
                await page.wait_for_function("window.ended !== null", timeout=90_000)
                result = await page.evaluate(
                    "({text: window.text, ids: window.ids, opens: window.opens, "
                    "final: window.finalText, ended: window.ended})"
                )
                shown = await page.text_content("#answer")
                await page.screenshot(path=str(tmp_path / "answer.png"))
            finally:
                await browser.close()

    full = "".join(tokens(TOKENS))
    assert seen_at_kill < TOKENS, "the answer was over before the replica died"
    assert result["text"] == full, json.dumps(result)
    assert shown == full  # what the page shows
    assert len(result["ids"]) == len(set(result["ids"])) == TOKENS
    assert result["final"] == full and result["ended"] == "COMPLETED"
    # it reconnected, and the second connection of its stream was served by B
    assert result["opens"] >= 2
    assert balancer.connections[port_b] >= 1
