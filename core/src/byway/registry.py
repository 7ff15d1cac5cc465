"""WorkerRegistry: membership, online leases and execution records.

- Membership: ``agent_type:workers:<T>`` and ``worker:agent_types:<W>`` sets, plus the set
  of every worker id that registered (for ``byway status``).
- Leases: ``worker:online:<W>`` holds JSON with a random token and expires unless renewed;
  it doubles as the worker-id lock (a second process with the same id refuses to start
  while the lease is held, unless the holder is provably dead: see ``byway._process``).
  Renewal, takeover and release are compare-and-set on the token. A heartbeat that finds
  the lease or the membership gone (Redis lost its data) writes them again.
- Execution records: one JSON per execution in the session's registry hash, with a
  timeline of every state it went through. Each transition is one Lua script call.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec
import redis.asyncio as aioredis

from byway._log import get_logger
from byway._process import ProcessIdentity, holder_is_dead
from byway.errors import WorkerIdInUseError
from byway.keys import EXEC_FIELD_PREFIX, Keys
from byway.protocol import now_ms
from byway.store.session import TransitionArgs, transition
from byway.store.workers import FindOnlineArgs, LeaseArgs, find_online, release_lease, renew_lease

__all__ = ["ExecutionRecord", "TimelineEntry", "WorkerInfo", "WorkerRegistry"]

DEFAULT_RECORD_TTL_S = 7 * 24 * 3600

log = get_logger("byway.registry")


class TimelineEntry(msgspec.Struct, kw_only=True):
    """One step of an execution (the by-framework shape: ``status`` and ``timestamp``)."""

    status: str
    timestamp: int
    worker_id: str = ""
    detail: dict[str, Any] | None = None


class ExecutionRecord(msgspec.Struct, kw_only=True):
    """One execution as stored in its session's registry hash."""

    execution_id: str
    message_id: str = ""
    session_id: str = ""
    trace_id: str = ""
    status: str = ""
    target_agent_type: str = ""
    source_agent_type: str = ""
    parent_message_id: str = ""
    task_group_id: str = ""
    user_code: str = ""
    depth: int = 0
    worker_id: str = ""
    stream_name: str = ""
    redis_message_id: str = ""
    cancel_requested: bool = False
    cancel_reason: str = ""
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    updated_at: int = 0
    attempts: int = 0
    # cjson re-encodes an empty list as {}: accept both
    timeline: list[TimelineEntry] | dict[str, Any] = msgspec.field(default_factory=list)
    result: dict[str, Any] | None = None

    @property
    def states(self) -> list[str]:
        """The states of the timeline, in order."""
        return [e.status for e in self.timeline] if isinstance(self.timeline, list) else []


class WorkerInfo(msgspec.Struct, kw_only=True):
    """What a worker's lease says about it.

    ``version``, ``token`` and ``last_seen`` are the by-framework lease fields (its
    clients count a worker online when ``last_seen`` > 0); the rest is Byway's.
    """

    worker_id: str = ""
    version: int = 1
    token: str = ""
    last_seen: int = 0
    agent_types: list[str] = msgspec.field(default_factory=list)
    hostname: str = ""
    pid: int = 0
    started_at: int = 0
    heartbeat_at: int = 0
    lease_ms: int = 0
    max_concurrency: int = 0
    running: int = 0
    #: the holding process beyond host and pid (Linux): boot id, pid namespace, start
    #: time in clock ticks, so that a restarted worker can tell its dead predecessor
    boot_id: str = ""
    pid_ns: str = ""
    proc_start: int = 0

    def process(self) -> ProcessIdentity:
        return ProcessIdentity(self.hostname, self.pid, self.boot_id, self.pid_ns, self.proc_start)


def _decode_worker(worker_id: str, raw: bytes) -> WorkerInfo:
    """A lease as Byway reads it; a by-framework worker's lease lacks most fields."""
    try:
        info = _worker_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        info = WorkerInfo()  # a legacy non-JSON lease still means "online"
    info.worker_id = info.worker_id or worker_id
    return info


_record_decoder = msgspec.json.Decoder(ExecutionRecord)
_worker_decoder = msgspec.json.Decoder(WorkerInfo)
_encoder = msgspec.json.Encoder()


def new_record(
    *,
    execution_id: str,
    message_id: str,
    session_id: str,
    trace_id: str,
    status: str,
    target_agent_type: str,
    source_agent_type: str = "",
    parent_message_id: str = "",
    task_group_id: str = "",
    user_code: str = "",
    depth: int = 0,
    now: int | None = None,
) -> bytes:
    """The JSON of a fresh execution record whose timeline starts at ``status``."""
    ts = now_ms() if now is None else now
    return _encoder.encode(
        {
            "execution_id": execution_id,
            "message_id": message_id,
            "session_id": session_id,
            "trace_id": trace_id,
            "status": status,
            "target_agent_type": target_agent_type,
            "source_agent_type": source_agent_type,
            "parent_message_id": parent_message_id,
            "task_group_id": task_group_id,
            "user_code": user_code,
            "depth": depth,
            "worker_id": "",
            "cancel_requested": False,
            "cancel_reason": "",
            "created_at": ts,
            "started_at": 0,
            "finished_at": 0,
            "updated_at": ts,
            "attempts": 0,
            "timeline": [{"status": status, "timestamp": ts, "worker_id": ""}],
        }
    )


class WorkerRegistry:
    """Registry operations over one Redis client and key schema."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys | None = None,
        *,
        record_ttl_s: int = DEFAULT_RECORD_TTL_S,
    ) -> None:
        self.redis = redis
        self.keys = keys or Keys()
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
        return _record_decoder.decode(raw) if raw else None

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
            _record_decoder.decode(v)
            for f, v in fields.items()
            if f.startswith(EXEC_FIELD_PREFIX.encode())
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
