"""``byway worker --health-port``: ``/healthz`` (the process is alive) and ``/readyz``
(it is consuming and Redis answers), for Kubernetes probes and load balancers.

It listens on 127.0.0.1 unless told otherwise (``--health-host``, ``$BYWAY_HEALTH_HOST``):
a probe from another machine or pod (Kubernetes' kubelet probes the pod's IP) needs
``--health-host 0.0.0.0`` (or the pod IP), a choice made on purpose.

A few lines of HTTP over :func:`asyncio.start_server`: no web framework for two routes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from byway._log import get_logger

if TYPE_CHECKING:
    from byway.runtime.runner import WorkerRunner

__all__ = ["DEFAULT_HEALTH_HOST", "HealthServer"]

#: where the health server listens unless told otherwise: this machine only
DEFAULT_HEALTH_HOST = "127.0.0.1"

log = get_logger("byway.health")


class HealthServer:
    """Serves the runner's liveness and readiness on ``host:port``."""

    def __init__(self, runner: WorkerRunner, port: int, host: str = DEFAULT_HEALTH_HOST) -> None:
        self.runner = runner
        self.port = port
        self.host = host
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> HealthServer:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        log.info("health on http://%s:%d/healthz and /readyz", self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            request = await asyncio.wait_for(reader.readline(), 5)
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else ""
            if path == "/healthz":
                status, body = 200, "ok"
            elif path == "/readyz":
                ready, why = self.runner.readiness()
                status, body = (200, "ready") if ready else (503, why)
            else:
                status, body = 404, "not found"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            payload = body.encode()
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        writer.close()
