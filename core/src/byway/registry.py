"""WorkerRegistry: membership, online leases and execution records.

- Membership: ``agent_type:workers:<T>`` and ``worker:agent_types:<W>`` sets, plus the set
  of every worker id that registered (for ``byway status``).
- Leases: ``worker:online:<W>`` holds JSON with a random token and expires unless renewed;
  it doubles as the worker-id lock (a second process with the same id refuses to start
  while the lease is held, unless the holder is provably dead: see ``byway._process``).
  Renewal, takeover and release are compare-and-set on the token. A heartbeat that finds
  the lease or the membership gone (Redis lost its data) writes them again.
- Execution records: one JSON per execution in the session's registry hash, with a
  timeline of every state it went through. Each transition is one Lua script call. Their
  shape, and the one decoder every reader uses, is ``byway.records``.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import msgspec
import redis.asyncio as aioredis

from byway._log import get_logger
from byway._process import holder_is_dead
from byway.errors import ConfigurationError, WorkerIdInUseError
from byway.keys import DEFAULT_NAMESPACE, EXEC_FIELD_PREFIX, Keys
from byway.protocol import now_ms
from byway.records import DEFAULT_RECORD_TTL_S as DEFAULT_RECORD_TTL_S
from byway.records import (
    ExecutionRecord,
    TimelineEntry,
    WorkerInfo,
    decode_record,
)
from byway.records import decode_worker as _decode_worker
from byway.records import new_record as new_record  # SEND's and START's fresh record
from byway.redis_client import bytes_client, get_redis
from byway.settings import is_cluster
from byway.store.session import TransitionArgs, transition
from byway.store.workers import FindOnlineArgs, LeaseArgs, find_online, release_lease, renew_lease

__all__ = [
    "ExecutionRecord",
    "TimelineEntry",
    "WorkerInfo",
    "WorkerRegistry",
    "check_agent_type_online",
    "check_worker_online",
]


log = get_logger("byway.registry")
_encoder = msgspec.json.Encoder()


class WorkerRegistry:
    """Registry operations over one Redis client and key schema."""

    def __init__(
        self,
        redis: aioredis.Redis | None = None,
        keys: Keys | None = None,
        *,
        record_ttl_s: int = DEFAULT_RECORD_TTL_S,
        redis_client: aioredis.Redis | None = None,
    ) -> None:
        """``WorkerRegistry(redis, keys)``, or by-framework's
        ``WorkerRegistry(redis_client=redis)`` (none: :func:`byway.redis_client.get_redis`).
        A client that decodes replies is read through its bytes-mode twin. ``keys``
        defaults to the environment's namespace (``BYWAY_NAMESPACE``) and the schema the
        client calls for (v2 on a cluster)."""
        if redis is not None and redis_client is not None:
            raise ConfigurationError("redis_client: pass either redis or redis_client, not both")
        given = redis if redis is not None else redis_client
        if given is None:
            given = get_redis()
        self.redis = bytes_client(given)
        if keys is None:  # the namespace and schema of the environment, nothing else of it
            schema = os.environ.get("BYWAY_KEY_SCHEMA") or ("v2" if is_cluster(given) else "v1")
            keys = Keys(os.environ.get("BYWAY_NAMESPACE", DEFAULT_NAMESPACE), schema)  # type: ignore[arg-type]  # Keys checks it
        self.keys = keys
        self.record_ttl_s = record_ttl_s

    # -- membership and leases -------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo) -> str:
        """Take the worker id's lease and join each agent type. Returns the lease token.

        A lease held by a process that is provably dead (this host, its pid gone) is taken
        over at once. Raises :class:`WorkerIdInUseError` if another live process holds
        the id, or one this process cannot tell about (another host).
        """
        token = secrets.token_hex(16)
        info.token = token
        now = now_ms()
        info.heartbeat_at = info.last_seen = now
        info.started_at = info.started_at or now
        key = self.keys.worker_online(info.worker_id)
        for _ in range(3):  # the holder's lease may lapse or change while we look
            if await self.redis.set(key, _encoder.encode(info), nx=True, px=info.lease_ms):
                break
            holder = await self.get_worker(info.worker_id)
            if holder is None:
                continue
            if not (holder.token and holder_is_dead(holder.process(), info.process())):
                where = f" (pid {holder.pid} on {holder.hostname})" if holder else ""
                raise WorkerIdInUseError(
                    f"worker_id {info.worker_id!r} is held by a live worker{where}; "
                    "choose another --worker-id or stop that process"
                )
            if await self._swap_lease(info, holder.token):
                log.warning(
                    "worker id %s: took over the lease of its dead process (pid %d on %s)",
                    info.worker_id,
                    holder.pid,
                    holder.hostname,
                )
                break
        else:
            raise WorkerIdInUseError(
                f"worker_id {info.worker_id!r}: its lease kept changing hands; try again"
            )
        # its agent types as this process serves them, not as an earlier one did
        await self.redis.delete(self.keys.worker_agent_types(info.worker_id))
        await self.rejoin(info)
        return token

    async def _swap_lease(self, info: WorkerInfo, holder_token: str) -> bool:
        """Replace the lease whose token is ``holder_token`` by ours (compare-and-set)."""
        args = LeaseArgs(
            keyspace=self.keys,
            worker_id=info.worker_id,
            token=holder_token,
            lease=_encoder.encode(info),
            lease_ms=info.lease_ms,
        )
        return bool(await renew_lease(self.redis, args))

    async def rejoin(self, info: WorkerInfo, strategies: dict[str, str] | None = None) -> list[str]:
        """Make sure the worker is a member of its agent types (and, given ``strategies``,
        that each agent type has its multitask strategy). Idempotent: a heartbeat calls it
        to find what Redis lost. Returns what was missing and is written again."""
        k = self.keys
        worker_id = info.worker_id
        strategies = strategies or {}
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(k.known_workers(), worker_id)
            if info.agent_types:
                pipe.sadd(k.worker_agent_types(worker_id), *info.agent_types)
            for agent_type in info.agent_types:
                pipe.sadd(k.agent_type_workers(agent_type), worker_id)
            for agent_type, strategy in strategies.items():
                pipe.set(k.agent_type_strategy(agent_type), strategy, nx=True)
            added = await pipe.execute()
        split = len(added) - len(strategies)
        joined, set_strategies = added[:split], added[split:]
        missing = []
        if any(joined):
            missing.append("registry membership")
        if any(set_strategies):
            missing.append("multitask strategies")
        return missing

    async def renew_lease(self, info: WorkerInfo) -> int:
        """Extend our lease: 1; 2 when it was gone (lapsed, or Redis lost it) and is ours
        again; 0 if another process took the worker id."""
        info.heartbeat_at = info.last_seen = now_ms()
        args = LeaseArgs(
            keyspace=self.keys,
            worker_id=info.worker_id,
            token=info.token,
            lease=_encoder.encode(info),
            lease_ms=info.lease_ms,
        )
        return int(await renew_lease(self.redis, args))

    async def unregister_worker(self, info: WorkerInfo) -> None:
        """Release the lease (if ours) and leave the agent types' member sets."""
        k = self.keys
        await release_lease(
            self.redis, LeaseArgs(keyspace=k, worker_id=info.worker_id, token=info.token)
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent_type in info.agent_types:
                pipe.srem(k.agent_type_workers(agent_type), info.worker_id)
            await pipe.execute()

    async def get_worker(self, worker_id: str) -> WorkerInfo | None:
        raw: Any = await self.redis.get(self.keys.worker_online(worker_id))
        return _decode_worker(worker_id, raw) if raw else None

    async def list_workers(self) -> list[WorkerInfo]:
        """Every worker whose lease is live, sorted by id."""
        members: Any = await self.redis.smembers(self.keys.known_workers())
        ids = sorted(m.decode() for m in members)
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.get(self.keys.worker_online(worker_id))
            raws = await pipe.execute()
        return [
            _decode_worker(worker_id, raw) for worker_id, raw in zip(ids, raws, strict=True) if raw
        ]

    async def workers_of(self, agent_type: str) -> list[str]:
        members: Any = await self.redis.smembers(self.keys.agent_type_workers(agent_type))
        return sorted(m.decode() for m in members)

    async def find_online_worker(
        self, agent_type: str, target_worker_id: str = "", *, script: bool = True
    ) -> str | None:
        """A live worker for ``agent_type`` (or whether ``target_worker_id`` is live);
        ``script=False`` reads without a script (a user that may not run scripts)."""
        k = self.keys
        if k.schema == "v1" and script:
            args = FindOnlineArgs(keyspace=k, agent_type=agent_type, target_worker=target_worker_id)
            return await find_online(self.redis, args)
        candidates = [target_worker_id] if target_worker_id else await self.workers_of(agent_type)
        async with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in candidates:
                pipe.exists(k.worker_online(worker_id))
            alive = await pipe.execute()
        return next((w for w, a in zip(candidates, alive, strict=True) if a), None)

    # -- execution records -----------------------------------------------------------------

    async def get_execution(self, session_id: str, execution_id: str) -> ExecutionRecord | None:
        raw: Any = await self.redis.hget(
            self.keys.session_registry(session_id), f"{EXEC_FIELD_PREFIX}{execution_id}"
        )
        return decode_record(raw) if raw else None

    async def get_execution_by_message(
        self, session_id: str, message_id: str
    ) -> ExecutionRecord | None:
        key = self.keys.session_registry(session_id)
        execution_id: Any = await self.redis.hget(key, f"msg_map:{message_id}")
        if execution_id is None:
            return None
        return await self.get_execution(session_id, execution_id.decode())

    async def list_executions(self, session_id: str) -> list[ExecutionRecord]:
        """Every execution of the session, oldest first."""
        fields: Any = await self.redis.hgetall(self.keys.session_registry(session_id))
        records = [
            decode_record(v) for f, v in fields.items() if f.startswith(EXEC_FIELD_PREFIX.encode())
        ]
        return sorted(records, key=lambda r: (r.created_at, r.execution_id))

    async def transition(
        self,
        session_id: str,
        execution_id: str,
        state: str,
        *,
        worker_id: str = "",
        detail: dict[str, Any] | None = None,
    ) -> bool:
        """Record a non-terminal state on the execution's timeline (atomic, one call)."""
        args = TransitionArgs(
            keyspace=self.keys,
            session_id=session_id,
            execution_id=execution_id,
            state=state,
            now_ms=now_ms(),
            worker_id=worker_id,
            detail=_encoder.encode(detail or {}),
        )
        return await transition(self.redis, args)

    # -- by-framework's read methods, in its shapes (plain dicts and worker-id lists) -------

    async def get_online_workers(self, agent_type: str) -> list[str]:
        """The ids of the live workers of ``agent_type``, sorted."""
        ids = await self.workers_of(agent_type)
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.exists(self.keys.worker_online(worker_id))
            alive = await pipe.execute()
        return [w for w, a in zip(ids, alive, strict=True) if a]

    async def has_online_agent_type(
        self, agent_type: str, check_active: bool = True
    ) -> tuple[bool, list[str]]:
        """Whether ``agent_type`` has live workers, and their ids (``check_active=False``:
        every member, live or not)."""
        ids = await (self.get_online_workers if check_active else self.workers_of)(agent_type)
        return bool(ids), ids

    async def is_worker_online(self, worker_id: str) -> bool:
        return bool(await self.redis.exists(self.keys.worker_online(worker_id)))

    async def get_all_workers(self) -> dict[str, dict[str, Any]]:
        """``{worker_id: {"agent_types": [...], "last_seen": ms}}`` for each live worker."""
        return {
            w.worker_id: {"agent_types": list(w.agent_types), "last_seen": w.last_seen}
            for w in await self.list_workers()
        }

    async def get_execution_by_message_id(
        self, message_id: str, session_id: str = ""
    ) -> dict[str, Any] | None:
        """The execution record of ``message_id`` as a dict (None without a session)."""
        if not session_id:
            return None
        record = await self.get_execution_by_message(session_id, message_id)
        return msgspec.to_builtins(record) if record else None

    async def get_all_session_executions(self, session_id: str) -> list[dict[str, Any]]:
        """Every execution record of the session as a dict, oldest first."""
        return [msgspec.to_builtins(r) for r in await self.list_executions(session_id)]


async def check_worker_online(redis: aioredis.Redis, worker_id: str) -> bool:
    """by-framework's function form of :meth:`WorkerRegistry.is_worker_online` (the
    environment's namespace)."""
    return await WorkerRegistry(redis_client=redis).is_worker_online(worker_id)


async def check_agent_type_online(
    redis: aioredis.Redis, agent_type: str, check_active: bool = True
) -> tuple[bool, list[str]]:
    """by-framework's function form of :meth:`WorkerRegistry.has_online_agent_type`."""
    return await WorkerRegistry(redis_client=redis).has_online_agent_type(agent_type, check_active)
