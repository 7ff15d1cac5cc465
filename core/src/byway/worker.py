"""GatewayWorker: the base class of every agent worker, and the ``@agent`` shortcut.

A worker names the agent types it serves and handles one command at a time per task::

    class Echo(GatewayWorker):
        def get_agent_types(self) -> list[str]:
            return ["echo"]

        async def process_command(self, command, context):
            await context.emit_chunk(command.content)
            return command.content

or, for a plain function::

    @agent("echo")
    async def echo(command, context):
        return command.content

The return value becomes the task's result: an :class:`AgentTaskResult`; a ``str``
(content, or a bare state name such as ``"FAILED"``); a ``dict`` with result fields
(``content``, ``reply_data``, ``status``...) or, otherwise, used as ``reply_data``.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from byway.errors import ConfigurationError
from byway.protocol import AgentState, AgentTaskResult, CancelTaskCommand, Command

if TYPE_CHECKING:
    from byway.context import AgentContext
    from byway.keys import Keys

__all__ = ["FunctionWorker", "GatewayWorker", "Handler", "agent", "normalize_result"]

Handler = Callable[[Command, "AgentContext"], Awaitable[Any]]

_STATES = frozenset(s.value for s in AgentState)
_RESULT_FIELDS = frozenset({"status", "content", "reply_data", "metadata", "extra_payload"})


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class GatewayWorker:
    """Base class: override :meth:`get_agent_types` and :meth:`process_command`."""

    def __init__(self, worker_id: str | None = None, **_: Any) -> None:
        self.worker_id = worker_id or default_worker_id()

    def get_agent_types(self) -> list[str]:
        raise NotImplementedError(f"{type(self).__name__} must implement get_agent_types()")

    async def process_command(self, command: Command, context: AgentContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement process_command()")

    async def on_cancel_task(self, command: CancelTaskCommand) -> None:
        """Called when one of this worker's tasks is asked to stop (before it is stopped)."""

    async def on_ready(self, redis: Any, keys: Keys) -> None:
        """Called once after the runner joined its agent types, just before
        :meth:`on_startup`, with the runner's Redis client and key names: the place to
        record what the worker serves (byway-langgraph records its graph there)."""

    async def on_startup(self) -> None:
        """Called once after the runner connected, before it consumes."""

    async def on_shutdown(self) -> None:
        """Called once after the runner drained, before it disconnects."""


class FunctionWorker(GatewayWorker):
    """A worker around one async function; built by :func:`agent`."""

    def __init__(
        self, handler: Handler, agent_types: list[str], worker_id: str | None = None
    ) -> None:
        super().__init__(worker_id)
        self.handler = handler
        self.agent_types = list(agent_types)

    def get_agent_types(self) -> list[str]:
        return list(self.agent_types)

    async def process_command(self, command: Command, context: AgentContext) -> Any:
        return await self.handler(command, context)


def agent(*agent_types: str) -> Callable[[Handler], FunctionWorker]:
    """Register an ``async def handler(command, context)`` as a worker of ``agent_types``."""
    if not agent_types or not all(isinstance(t, str) and t for t in agent_types):
        raise ConfigurationError("agent(): expected one or more non-empty agent type names")

    def wrap(handler: Handler) -> FunctionWorker:
        return FunctionWorker(handler, list(agent_types))

    return wrap


def _json_checked(value: Any, path: str) -> Any:
    try:
        msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(f"{path}: the handler's result must be JSON-serialisable ({exc})") from None
    return value


def normalize_result(result: Any) -> AgentTaskResult:
    """Turn whatever ``process_command`` returned into an :class:`AgentTaskResult`."""
    if isinstance(result, AgentTaskResult):
        _json_checked(result.reply_data, "reply_data")
        return result
    if result is None:
        return AgentTaskResult()
    if isinstance(result, str):
        return (
            AgentTaskResult(status=result) if result in _STATES else AgentTaskResult(content=result)
        )
    if isinstance(result, dict):
        if (
            (result and set(result) <= _RESULT_FIELDS)
            or "content" in result
            or "reply_data" in result
        ):
            content = result.get("content") or ""
            if not isinstance(content, (str, list)):
                raise TypeError(
                    f"content: expected str or list of objects, got {type(content).__name__}"
                )
            return AgentTaskResult(
                status=str(result.get("status", AgentState.COMPLETED)),
                content=content,
                reply_data=_json_checked(result.get("reply_data"), "reply_data"),
                metadata=dict(result.get("metadata") or {}),
                extra_payload=dict(result.get("extra_payload") or {}),
            )
        return AgentTaskResult(reply_data=_json_checked(result, "reply_data"))
    return AgentTaskResult(reply_data=_json_checked(result, "reply_data"))
