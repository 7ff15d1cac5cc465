"""A real Phoenix server (SQLite storage, loopback ports of its own) for the tracing
tests, and reading spans back through its REST API."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import stop_process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(work: Path) -> Iterator[str]:
    """A Phoenix server working in ``work``; its URL, once it is healthy."""
    port, grpc = _free_port(), _free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(work),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "phoenix.server.main", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a busy machine
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "Phoenix did not start: " + Path(work / "server.log").read_text()[-2000:]
                )
            time.sleep(0.3)
        yield url
    finally:
        stop_process(proc)
        log.close()


async def phoenix_spans(url: str, project: str, want: int) -> list[dict[str, Any]]:
    """The project's spans (as Phoenix's REST API returns them: attributes, events,
    status) once at least ``want`` arrived and no more come for a second (ingestion is
    asynchronous)."""
    spans: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        for _ in range(60):
            reply = await http.get(f"/v1/projects/{project}/spans", params={"limit": 1000})
            if reply.status_code == 200:
                got: list[dict[str, Any]] = reply.json()["data"]
                if len(got) >= want and len(got) == len(spans):
                    return got
                spans = got
            await asyncio.sleep(0.5 if len(spans) < want else 1.0)
    return spans
