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
"""

from __future__ import annotations

from byway._client.admin import Admin
from byway._client.answers import Answers
from byway._client.cancel import Cancels
from byway._client.reads import DEFAULT_STREAM_BLOCK_MS as DEFAULT_STREAM_BLOCK_MS
from byway._client.reads import Reads
from byway._client.types import ClientInterceptor, ReloadAck, SendMessageResponse

__all__ = ["ClientInterceptor", "GatewayClient", "ReloadAck", "SendMessageResponse"]


class GatewayClient(Answers, Cancels, Admin, Reads):
    """Writes commands to agent-type (or worker) streams and reads session streams."""
