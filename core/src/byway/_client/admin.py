"""Operating the workers: plugin reloads and the dead-letter stream."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec

from byway._client.base import ClientBase
from byway._client.types import ReloadAck, SendMessageResponse, checked_id
from byway.errors import ConfigurationError, ProtocolError
from byway.protocol import (
    AskAgentCommand,
    MessageHeader,
    ReloadPluginsCommand,
    decode_command,
    encode_command,
    new_id,
)

__all__ = ["Admin"]


class Admin(ClientBase):
    """``reload_plugins``, ``dead_letters`` and ``replay_dead_letter``."""

    # -- plugins ---------------------------------------------------------------------------

    async def reload_plugins(self, reason: str = "", timeout: float = 10.0) -> list[ReloadAck]:
        """Ask every live worker to reload its plugins and agent configs; wait up to
        ``timeout`` seconds for their acknowledgements and return them (workers that did
        not answer in time are missing from the list)."""
        if timeout <= 0:
            raise ConfigurationError(f"timeout: expected a positive number, got {timeout}")
        workers = [w.worker_id for w in await self.registry.list_workers()]
        reload_id = new_id("reload")
        ack_stream = self.keys.plugin_reload_ack(reload_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in workers:
                command = ReloadPluginsCommand(
                    header=MessageHeader(
                        message_id=new_id("msg-reload"),
                        session_id=f"reload-{reload_id}",
                        trace_id=uuid.uuid4().hex,
                    ),
                    reload_id=reload_id,
                    reason=reason,
                )
                stream = self.keys.worker_stream(worker_id)
                pipe.xadd(stream, {"data": self.flow.seal(stream, encode_command(command))})
            await pipe.execute()
        acks: list[ReloadAck] = []
        last: bytes | str = "0"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(acks) < len(workers):
            left = deadline - loop.time()
            if left <= 0:
                break
            reply: Any = await self.redis.xread({ack_stream: last}, block=max(1, int(left * 1000)))
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    acks.append(msgspec.json.decode(fields[b"data"], type=ReloadAck))
        return acks

    # -- dead letters ----------------------------------------------------------------------

    async def dead_letters(self, count: int = 100) -> list[dict[str, Any]]:
        """The newest dead-lettered entries: ``id``, ``stream``, ``reason``, ``raw``..."""
        entries: Any = await self.redis.xrevrange(self.keys.dead_letters(), count=count)
        return [{"id": eid.decode(), **msgspec.json.decode(f[b"data"])} for eid, f in entries]

    async def replay_dead_letter(self, entry_id: str) -> SendMessageResponse:
        """Send a dead-lettered task again, as a new message of the same session (the old
        execution stays FAILED), and remove it from the dead-letter stream."""
        checked_id("entry_id", entry_id)
        key = self.keys.dead_letters()
        found: Any = await self.redis.xrange(key, min=entry_id, max=entry_id)
        if not found:
            raise ConfigurationError(f"entry_id: no dead letter {entry_id!r}")
        letter = msgspec.json.decode(found[0][1][b"data"])
        try:
            command = decode_command(letter["raw"])
        except ProtocolError as exc:
            raise ConfigurationError(f"entry_id: {entry_id!r} cannot be replayed: {exc}") from None
        if not isinstance(command, AskAgentCommand):
            raise ConfigurationError(
                f"entry_id: {entry_id!r} holds a {command.action_type} command; only "
                "AskAgent tasks are replayed"
            )
        header = msgspec.structs.replace(command.header, message_id=new_id("msg"))
        sent = await self.send_command(
            msgspec.structs.replace(command, header=header), require_online_worker=False
        )
        await self.redis.xdel(key, entry_id)
        return sent
