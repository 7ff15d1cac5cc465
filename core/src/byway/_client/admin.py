"""Operating the workers: plugin reloads, a worker's status and the dead-letter stream."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec

from byway._client.base import ClientBase
from byway._client.types import ReloadAck, SendMessageResponse, checked_id
from byway._log import get_logger
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

log = get_logger("byway.client")


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
        await self._send_reloads(workers, reload_id, reason)
        acks: list[ReloadAck] = []
        last = "0"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(acks) < len(workers):
            left = deadline - loop.time()
            if left <= 0:
                break
            last, more = await self._read_acks(reload_id, last, max(1, int(left * 1000)), 100)
            acks += more
        return acks

    async def reload_plugins_for_agent_type(
        self,
        agent_type: str,
        reason: str = "",
        reload_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """by-framework's reload of one agent type's live workers, without waiting:
        ``{"reload_id", "agent_type", "worker_ids", "dispatched_count"}``; read the
        acknowledgements with :meth:`collect_reload_acks`."""
        checked_id("agent_type", agent_type)
        reload_id = checked_id("reload_id", reload_id) if reload_id else new_id("reload")
        workers = await self.registry.get_online_workers(agent_type)
        await self._send_reloads(workers, reload_id, reason, metadata)
        return {
            "reload_id": reload_id,
            "agent_type": agent_type,
            "worker_ids": workers,
            "dispatched_count": len(workers),
        }

    async def collect_reload_acks(
        self, reload_id: str, last_id: str = "0-0", block_ms: int = 0, count: int = 100
    ) -> list[dict[str, Any]]:
        """The acknowledgements of ``reload_id`` after entry ``last_id``, as dicts;
        ``block_ms`` > 0 waits that long for the first (0, by-framework's default, does
        not wait — Redis would wait forever)."""
        checked_id("reload_id", reload_id)
        _, acks = await self._read_acks(reload_id, last_id, block_ms or None, count)
        return [msgspec.to_builtins(ack) for ack in acks]

    async def _send_reloads(
        self,
        workers: list[str],
        reload_id: str,
        reason: str,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in workers:
                command = ReloadPluginsCommand(
                    header=MessageHeader(
                        message_id=new_id("msg-reload"),
                        session_id=f"reload-{reload_id}",
                        trace_id=uuid.uuid4().hex,
                        metadata=dict(metadata or {}),
                    ),
                    reload_id=reload_id,
                    reason=reason,
                )
                stream = self.keys.worker_stream(worker_id)
                pipe.xadd(stream, {"data": self.flow.seal(stream, encode_command(command))})
            await pipe.execute()

    async def _read_acks(
        self, reload_id: str, last: str, block_ms: int | None, count: int
    ) -> tuple[str, list[ReloadAck]]:
        """The acknowledgements after ``last`` (a worker's malformed one is skipped), and
        the id to read after next."""
        stream = self.keys.plugin_reload_ack(reload_id)
        reply: Any = await self.redis.xread({stream: last}, count=count, block=block_ms)
        acks: list[ReloadAck] = []
        for _, entries in reply or []:
            for entry_id, fields in entries:
                last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                try:
                    acks.append(msgspec.json.decode(fields.get(b"data", b""), type=ReloadAck))
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    log.warning("reload %s: skipped acknowledgement %s (%s)", reload_id, last, exc)
        return last, acks

    async def get_worker_status(self, worker_id: str) -> dict[str, Any]:
        """What a worker's lease says (``online``, agent types, running and free slots,
        heartbeat...) as a dict; ``{"worker_id", "online": False}`` when it has none."""
        checked_id("worker_id", worker_id)
        info = await self.registry.get_worker(worker_id)
        if info is None:
            return {"worker_id": worker_id, "online": False}
        return {**msgspec.to_builtins(info), "online": True}

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
