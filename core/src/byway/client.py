"""GatewayClient: send commands to agents and read sessions' event streams.

::

    async with GatewayClient.from_url("redis://localhost:6379") as client:
        sent = await client.send_message("research", "s-1", "Summarise the Q3 report")
        async for event in client.stream("s-1", until_message_id=sent.message_id):
            print(event.event_type, event.data)

``stream`` is resumable: every event carries the stream entry ``id`` it was read at, and
``stream(session_id, after=event.id)`` continues from there after a disconnect.

Without scripts (``scripts=False``, ``BYWAY_CLIENT_SCRIPTS=0``, or by itself once Redis
answers NOPERM to a script: the ACL client role of ``byway acl``) the client writes
nothing but control-stream entries: an ask is a plain XADD (the worker that reads it
creates its execution record and applies one writer per session), the online check
reads the registry, and a cancel is a CANCEL_TASK on the task's agent-type stream, whose
worker cancels the tree.

The client is composed of one part per concern (``byway._client``): sending (the base:
state, ``send_message``, ``send_command``), answers (``resume``), cancels, reads
(``stream``) and operating the workers (reloads, dead letters).

by-framework's spellings run beside Byway's: ``GatewayClient(redis_client=redis,
registry=WorkerRegistry(redis_client=redis))`` (a client that decodes replies is read
through its bytes-mode twin, :mod:`byway.redis_client`), its interceptor forms
(:mod:`byway._client.intercept`), ``cancel_task``'s response fields, and
:class:`ByaiGatewayClient` for Byai messages.
"""

from __future__ import annotations

from typing import Any

from byway._client.admin import Admin
from byway._client.answers import Answers
from byway._client.cancel import Cancels
from byway._client.intercept import GatewayInterceptor
from byway._client.reads import DEFAULT_STREAM_BLOCK_MS as DEFAULT_STREAM_BLOCK_MS
from byway._client.reads import Reads
from byway._client.types import (
    CancelTaskResponse,
    ClientInterceptor,
    ReloadAck,
    RoutePolicy,
    SendMessageResponse,
)
from byway.byai import ByaiAskAgentCommand, ByaiContent, ByaiResumeCommand, serialize_byai_content
from byway.protocol import Command, Content

__all__ = [
    "ByaiGatewayClient",
    "CancelTaskResponse",
    "ClientInterceptor",
    "GatewayClient",
    "GatewayInterceptor",
    "ReloadAck",
    "RoutePolicy",
    "SendMessageResponse",
]


class GatewayClient(Answers, Cancels, Admin, Reads):
    """Writes commands to agent-type (or worker) streams and reads session streams."""


class ByaiGatewayClient(GatewayClient):
    """A :class:`GatewayClient` whose ``content`` may be a ``BaiYingMessage`` or a list of
    them (by-framework's Byai client), sent in the wire shape by-framework sends."""

    async def send_message(
        self,
        target_agent_type: str,
        session_id: str,
        content: ByaiContent | Content,
        *,
        user_code: str = "",
        user_name: str = "",
        metadata: dict[str, Any] | None = None,
        extra_payload: dict[str, Any] | None = None,
        target_worker_id: str | None = None,
        require_online_worker: bool = True,
        wait_for_reply: bool = False,
        message_id: str | None = None,
        trace_id: str | None = None,
        multitask_strategy: str | None = None,
        route_policy: str | None = None,
    ) -> SendMessageResponse:
        """:meth:`GatewayClient.send_message`, ``content`` serialised first."""
        return await super().send_message(
            target_agent_type,
            session_id,
            serialize_byai_content(content),
            user_code=user_code,
            user_name=user_name,
            metadata=metadata,
            extra_payload=extra_payload,
            target_worker_id=target_worker_id,
            require_online_worker=require_online_worker,
            wait_for_reply=wait_for_reply,
            message_id=message_id,
            trace_id=trace_id,
            multitask_strategy=multitask_strategy,
            route_policy=route_policy,
        )

    async def send_command(
        self,
        command: Command,
        *,
        target_worker_id: str | None = None,
        require_online_worker: bool = True,
        multitask_strategy: str = "",
    ) -> SendMessageResponse:
        """:meth:`GatewayClient.send_command`; a Byai command goes as its plain one."""
        if isinstance(command, (ByaiAskAgentCommand, ByaiResumeCommand)):
            command = command.to_command()
        return await super().send_command(
            command,
            target_worker_id=target_worker_id,
            require_online_worker=require_online_worker,
            multitask_strategy=multitask_strategy,
        )
