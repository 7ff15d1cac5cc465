"""The synchronous half of LangGraph's checkpointer interface, refused: Byway runs graphs
with ``astream``, and a blocking Redis call inside the event loop would stall every task."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)


class AsyncOnlySaver(BaseCheckpointSaver[str]):
    """A checkpointer whose sync methods raise ``NotImplementedError`` saying what to use."""

    def _sync(self) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} is async: run the graph with ainvoke()/astream() "
            "(Byway's LangGraph worker does)"
        )

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._sync()  # type: ignore[no-any-return]

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        return self._sync()  # type: ignore[no-any-return]

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._sync()  # type: ignore[no-any-return]

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._sync()

    def delete_thread(self, thread_id: str) -> None:
        self._sync()
