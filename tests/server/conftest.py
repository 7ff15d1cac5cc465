"""What the ``byway serve`` tests share: two tenants' keys, a server process on the test's
Redis and namespace, and an SSE reader (the frames as a browser's EventSource sees them).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from byway import RedisSettings
from tests.conftest import spawn_server, spawn_worker, stop_process

ACME_KEY = "k-acme-0123456789abcdef"
GLOBEX_KEY = "k-globex-0123456789abcdef"
KEYS_ENV = {"BYWAY_SERVER_API_KEYS": f"acme={ACME_KEY},globex={GLOBEX_KEY}"}
ACME = {"X-Api-Key": ACME_KEY}
GLOBEX = {"X-Api-Key": GLOBEX_KEY}
AGENTS = "tests.agents.server_agents"
#: how long a test waits for a stream to end, a worker to come online...
PATIENCE = 60.0


@dataclass
class Frame:
    """One SSE frame, parsed as the SSE spec says (what ``EventSource`` dispatches)."""

    id: str = ""
    event: str = "message"
    data: str = ""
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def content(self) -> str:
        """A chunk's or a final answer's text."""
        return str(self.json["data"].get("content", ""))


async def frames(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    until: Callable[[Frame], bool] | None = None,
    comments: list[str] | None = None,
    on_open: Callable[[httpx.Response], None] | None = None,
) -> list[Frame]:
    """The frames of the event stream at ``url`` until the server ends it, or until
    ``until(frame)`` holds for one (included); comment lines go to ``comments`` (and
    reading stops once ``until`` is met by a comment-only block, if it checks those)."""
    got: list[Frame] = []

    async def read() -> None:
        # (httpx's params= would replace the URL's own query, not add to it)
        target = httpx.URL(url).copy_merge_params(params or {})
        async with client.stream("GET", target, headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            if on_open:
                on_open(response)
            current = Frame()
            async for line in response.aiter_lines():
                if line == "":
                    if current.data or current.id:
                        got.append(current)
                        if until and until(current):
                            return
                    elif current.comments and until and until(current):
                        return
                    current = Frame()
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "":
                    current.comments.append(value)
                    if comments is not None:
                        comments.append(value)
                elif name == "id":
                    current.id = value
                elif name == "event":
                    current.event = value
                elif name == "data":
                    current.data = f"{current.data}\n{value}" if current.data else value

    await asyncio.wait_for(read(), PATIENCE)
    return got


def is_end(frame: Frame) -> bool:
    return frame.event == "appStreamResponse"


@pytest.fixture
def serve(settings: RedisSettings) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], str]]]:
    """Start ``byway serve`` processes (API keys of tenants acme and globex unless
    ``env`` says otherwise); all stopped at the end of the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
        proc, url = spawn_server(settings, *args, env={**KEYS_ENV, **(env or {})})
        started.append(proc)
        return proc, url

    yield start
    for proc in started:
        stop_process(proc)


@pytest.fixture
def workers(settings: RedisSettings) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start worker processes of :mod:`tests.agents.server_agents`; stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        proc = spawn_worker(f"{AGENTS}:{name}", settings)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_process(proc)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(PATIENCE)) as client:
        yield client
