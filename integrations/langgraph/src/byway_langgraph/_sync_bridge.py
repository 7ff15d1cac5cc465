"""The synchronous half of LangGraph's checkpointer interface, served on the saver's loop.

Byway runs graphs with ``astream``, so the saver is async. But a graph's sync node runs in
a worker thread, and one that calls ``subgraph.invoke()`` makes the subgraph call the
saver's *sync* methods from that thread. The Redis client belongs to the event loop the
saver was last used on, so such a call is handed to that loop
(``asyncio.run_coroutine_threadsafe``) and the thread waits for the answer, as
LangGraph's own async savers do. A sync call from the loop's own thread would wait for
itself forever, so it is refused with an error saying what to use instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)

T = TypeVar("T")


class LoopBridgedSaver(BaseCheckpointSaver[str]):
    """A checkpointer whose sync methods run its async ones on the loop it serves.

    Subclasses implement the async methods and call :meth:`_bind_loop` in each, so the
    saver knows which loop its Redis client lives on.
    """

    _loop: asyncio.AbstractEventLoop | None = None
    _loop_thread: int | None = None

    def _bind_loop(self) -> None:
        """Remember the running loop (the one whose Redis connections this saver uses)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._loop_thread = threading.get_ident()

    def _on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the saver's loop from another thread and wait for its result."""
        loop = self._loop
        name = type(self).__name__
        if loop is None or loop.is_closed() or not loop.is_running():
            work.close()
            raise NotImplementedError(
                f"{name}: a sync call needs the event loop the saver runs on, and none is "
                "running; use the async API (ainvoke()/astream(), aget_state()...)"
            )
        if self._loop_thread == threading.get_ident():
            work.close()
            raise RuntimeError(
                f"{name}: a sync checkpointer call from the event loop's own thread would "
                "block that loop forever; call ainvoke()/astream()/aget_state() there, or "
                "run the sync code in a thread (a sync node, asyncio.to_thread)"
            )
        return asyncio.run_coroutine_threadsafe(work, loop).result()

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._on_loop(self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        items = self.alist(config, filter=filter, before=before, limit=limit)
        return self._iterate(items)

    def _iterate(self, items: AsyncIterator[CheckpointTuple]) -> Iterator[CheckpointTuple]:
        """One item at a time, each fetched on the loop (a long history is not read at once)."""

        async def step() -> tuple[bool, CheckpointTuple | None]:
            try:
                return True, await anext(items)
            except StopAsyncIteration:
                return False, None

        try:
            while True:
                more, item = self._on_loop(step())
                if not more:
                    return
                assert item is not None
                yield item
        finally:
            closing = getattr(items, "aclose", None)
            if closing is not None and self._loop is not None and self._loop.is_running():
                if self._loop_thread != threading.get_ident():
                    asyncio.run_coroutine_threadsafe(closing(), self._loop).result()

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._on_loop(self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._on_loop(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._on_loop(self.adelete_thread(thread_id))
