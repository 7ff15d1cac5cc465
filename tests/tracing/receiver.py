"""A stand-in for a Langfuse server's (or any) OTLP/HTTP endpoint: it decodes the spans
it is sent. ``python -m tests.tracing.receiver PORT`` runs one that only counts them (the
sink the tracing figures in docs/performance.md were measured against)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class Receiver:
    """What a Langfuse server's OTLP endpoint received: spans as dicts, and the paths and
    credentials of every request."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def take(self, path: str, auth: str, body: bytes) -> None:
        with self.lock:
            self.requests.append((path, auth))
        if not path.endswith("/otel/v1/traces"):
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scoped in resource.scope_spans:
                for span in scoped.spans:
                    with self.lock:
                        self.spans.append(
                            {
                                "name": span.name,
                                "scope": scoped.scope.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_id": span.parent_span_id.hex(),
                                "attributes": {a.key: _value(a.value) for a in span.attributes},
                                "status": span.status.message,
                                "events": [
                                    {a.key: _value(a.value) for a in e.attributes}
                                    for e in span.events
                                ],
                            }
                        )


@contextmanager
def serving(port: int = 0) -> Iterator[tuple[str, Receiver]]:
    """A receiver on loopback in a thread; its URL and what it received."""
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.take(self.path, self.headers.get("Authorization", ""), body)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    with serving(int(sys.argv[1])) as (url, got):
        print(f"receiving at {url}", flush=True)
        while True:
            time.sleep(10)
            print(f"{len(got.spans)} spans so far", flush=True)
