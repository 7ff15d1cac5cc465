"""Reading a session's events: ``stream`` (resumable from any entry id) and what is
built on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from byway._client.base import ClientBase, log
from byway._client.types import checked_id
from byway.errors import ProtocolError
from byway.protocol import Event, EventType, decode_event

__all__ = ["DEFAULT_STREAM_BLOCK_MS", "Reads"]

DEFAULT_STREAM_BLOCK_MS = 5_000


class Reads(ClientBase):
    """``stream``, ``last_event_id`` and ``wait_for_final``."""

    # -- reading ---------------------------------------------------------------------------

    async def stream(
        self,
        session_id: str,
        after: str = "0",
        *,
        until_message_id: str | None = None,
        stop_at_end: bool = False,
        block_ms: int = DEFAULT_STREAM_BLOCK_MS,
        idle_timeout: float | None = None,
    ) -> AsyncIterator[Event]:
        """The session's events after entry id ``after`` (``"0"``: from the start,
        ``"$"``: only new ones), as they arrive.

        Stops after the ``appStreamResponse`` of ``until_message_id`` (or of any root task
        with ``stop_at_end``), or when nothing arrived for ``idle_timeout`` seconds;
        otherwise runs until the consumer stops iterating.
        """
        checked_id("session_id", session_id)
        key = self.keys.session_stream(session_id)
        last = after
        if last == "$":
            last = await self.last_event_id(session_id)
        loop = asyncio.get_running_loop()
        deadline = None if idle_timeout is None else loop.time() + idle_timeout
        while True:
            block = block_ms
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                block = max(1, min(block_ms, int(remaining * 1000)))
            reply: Any = await self.redis.xread({key: last}, count=500, block=block)
            if not reply:
                continue
            if idle_timeout is not None:
                deadline = loop.time() + idle_timeout
            for entry_id, fields in reply[0][1]:
                last = entry_id.decode()
                try:
                    event = decode_event(
                        fields.get(b"data", b"") if isinstance(fields, dict) else b"",
                        last,
                        max_bytes=self.limits.max_command_bytes,
                        max_depth=self.limits.max_depth,
                    )
                except ProtocolError as exc:  # someone else's bytes must not end the stream
                    log.warning("session %s: skipped entry %s (%s)", session_id, last, exc)
                    continue
                yield event
                if event.event_type == EventType.APP_STREAM_RESPONSE and (
                    stop_at_end or event.message_id == until_message_id
                ):
                    return

    async def last_event_id(self, session_id: str) -> str:
        """The id of the session's newest event ("0" if none): read after it for what's new."""
        newest: Any = await self.redis.xrevrange(self.keys.session_stream(session_id), count=1)
        return newest[0][0].decode() if newest else "0"

    async def wait_for_final(
        self, session_id: str, message_id: str, *, after: str = "0", timeout: float | None = None
    ) -> Event:
        """The ``finalAnswer`` event of ``message_id`` (reads until its stream ends)."""
        final: Event | None = None
        async for event in self.stream(
            session_id, after, until_message_id=message_id, idle_timeout=timeout
        ):
            if event.event_type == EventType.FINAL_ANSWER and event.message_id == message_id:
                final = event
        if final is None:
            if timeout is None:  # the stream ended without one (or it did not decode)
                raise TimeoutError(f"the stream of {message_id} ended without a final answer")
            raise TimeoutError(f"no final answer for {message_id} within {timeout}s")
        return final
