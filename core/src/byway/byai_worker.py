"""ByaiWorker: a GatewayWorker whose handler sees Byai messages, not wire dicts.

::

    class Chat(ByaiWorker):
        def get_agent_types(self) -> list[str]:
            return ["chat"]

        async def process_command(self, command, context: ByaiAgentContext):
            message = command.content            # a BaiYingMessage
            await context.emit_chunk(f"you said: {message.content}")

Before a subclass's ``process_command`` runs, the command's content is decoded with
:meth:`ByaiWorker.get_content_codec` (``ByaiAskAgentCommand`` / ``ByaiResumeCommand``;
content that does not decode fails the task with the field named), and the context is a
:class:`ByaiAgentContext`: the task's context (the same object state, seen by the runtime)
whose ``call_agent`` and ``dispatch_group`` also take Byai messages.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from byway.byai import (
    ByaiAskAgentCommand,
    ByaiContent,
    ByaiContentCodec,
    ByaiResumeCommand,
    ContentCodec,
    serialize_byai_content,
)
from byway.context import AgentContext
from byway.protocol import AskAgentCommand, Command, ResumeCommand
from byway.worker import GatewayWorker

__all__ = ["ByaiAgentContext", "ByaiAgentTask", "ByaiWorker"]


@dataclass(frozen=True, slots=True)
class ByaiAgentTask:
    """One task of :meth:`ByaiAgentContext.dispatch_group`."""

    target_agent_type: str
    content: ByaiContent
    extra_payload: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class ByaiAgentContext(AgentContext):
    """The task's :class:`AgentContext`, sending Byai messages as their wire shape."""

    @classmethod
    def view_of(cls, context: AgentContext) -> ByaiAgentContext:
        """A ``ByaiAgentContext`` sharing ``context``'s state (what one sets, the other
        sees: a suspension, ``state``, the cancel flag)."""
        if isinstance(context, cls):
            return context
        view = cls.__new__(cls)
        view.__dict__ = context.__dict__
        return view

    async def call_agent(
        self,
        target_agent_type: str,
        content: Any,
        wait_for_reply: bool = True,
        timeout: float | None = None,
        payload: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        extra_payload: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """:meth:`AgentContext.call_agent`, ``content`` a :data:`ByaiContent` too
        (``extra_payload`` is by-framework's name of ``payload``)."""
        return await super().call_agent(
            target_agent_type,
            serialize_byai_content(content),
            wait_for_reply,
            timeout,
            payload if payload is not None else extra_payload,
            metadata,
        )

    async def dispatch_group(
        self,
        tasks: Sequence[dict[str, Any] | ByaiAgentTask],
        wait_for_reply: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """:meth:`AgentContext.dispatch_group` over dicts or :class:`ByaiAgentTask`s."""
        plain: list[dict[str, Any]] = []
        for task in tasks:
            if isinstance(task, ByaiAgentTask):
                task = {
                    "target_agent_type": task.target_agent_type,
                    "content": task.content,
                    "extra_payload": task.extra_payload or {},
                    "metadata": task.metadata or {},
                }
            if isinstance(task, dict) and "content" in task:
                task = {**task, "content": serialize_byai_content(task["content"])}
            plain.append(task)
        return await super().dispatch_group(plain, wait_for_reply, timeout)


class ByaiWorker(GatewayWorker):
    """A worker whose subclasses' ``process_command`` gets decoded Byai content and a
    :class:`ByaiAgentContext`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handler = cls.__dict__.get("process_command")
        if handler is not None and not getattr(handler, "_byai_decodes", False):
            cls.process_command = _decoding(handler)  # type: ignore[method-assign]

    def get_content_codec(self) -> ContentCodec | None:
        """The codec of the handler's content (None: the wire content as is)."""
        return ByaiContentCodec()

    def get_context_class(self) -> type[ByaiAgentContext]:
        return ByaiAgentContext

    def prepare_command_for_processing(self, command: Command) -> Command:
        """``command`` with its content decoded by :meth:`get_content_codec`."""
        codec = self.get_content_codec()
        if codec is None or type(command) in (ByaiAskAgentCommand, ByaiResumeCommand):
            return command
        if isinstance(command, AskAgentCommand):
            return ByaiAskAgentCommand(
                header=command.header,
                content=codec.deserialize(command.content),
                wait_for_reply=command.wait_for_reply,
                extra_payload=dict(command.extra_payload),
            )
        if isinstance(command, ResumeCommand):
            return ByaiResumeCommand(
                header=command.header,
                content=codec.deserialize(command.content),
                status=command.status,
                reply_data=command.reply_data,
                extra_payload=dict(command.extra_payload),
            )
        return command


def _decoding(handler: Any) -> Any:
    """``handler`` run on the decoded command, with the Byai context."""

    @functools.wraps(handler)
    async def process_command(self: ByaiWorker, command: Command, context: AgentContext) -> Any:
        prepared = self.prepare_command_for_processing(command)
        view = self.get_context_class().view_of(context)
        return await handler(self, prepared, view)

    process_command._byai_decodes = True  # type: ignore[attr-defined]
    return process_command
