"""The LangGraph Server API's records in Redis: threads, runs, and their indexes.

Written by the routes of :mod:`byway_langgraph.server` and by the worker (a run's thread
state once it stops), read by any server replica. A LangGraph thread is a Byway session
(``thread_id`` = session id), so its events, executions and cancel are the session's; what
LangGraph needs beyond those lives here, beside the session's keys:

- ``<prefix>:lg:thread:<T>`` (hash): ``record`` = :class:`ThreadRecord` as JSON, and
  ``state`` = the thread's latest state as the API shows it (``values``, ``next``,
  ``tasks``, ``interrupts``, ``checkpoint``...), written by the worker when a run stops;
- ``<prefix>:lg:threads:<tenant>`` (sorted set): the tenant's thread ids by update time;
- ``<prefix>:lg:run:<R>`` (string): :class:`RunRecord` as JSON;
- ``<prefix>:lg:thread_runs:<T>`` (sorted set): a thread's run ids by creation time.

Under key schema v2 the thread and run ids are hash tags. Everything expires
(:data:`RECORD_TTL_S`, renewed on every write), like the session's own records.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from byway.keys import Keys

__all__ = [
    "RECORD_TTL_S",
    "ApiKeys",
    "RunRecord",
    "ThreadRecord",
    "create_thread",
    "delete_run",
    "delete_thread",
    "get_run",
    "get_thread",
    "get_thread_state",
    "get_threads",
    "list_runs",
    "list_threads",
    "now_ms",
    "put_run",
    "put_thread",
    "put_thread_state",
]

#: how long a thread's or run's records live after their last write (the checkpoints'
#: retention: a week)
RECORD_TTL_S = 7 * 86400


def now_ms() -> int:
    return int(time.time() * 1000)


class ApiKeys:
    """The key names of these records for one namespace and schema."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def _id(self, value: str) -> str:
        return f"{{{value}}}" if self.keys.schema == "v2" else value

    def thread(self, thread_id: str) -> str:
        return f"{self.keys.prefix}:lg:thread:{self._id(thread_id)}"

    def tenant_threads(self, tenant: str) -> str:
        return f"{self.keys.prefix}:lg:threads:{self._id(tenant)}"

    def run(self, run_id: str) -> str:
        return f"{self.keys.prefix}:lg:run:{self._id(run_id)}"

    def thread_runs(self, thread_id: str) -> str:
        return f"{self.keys.prefix}:lg:thread_runs:{self._id(thread_id)}"


class ThreadRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What LangGraph's ``Thread`` holds beyond the session: ids, times, metadata."""

    thread_id: str
    tenant: str
    created_at: int = 0
    updated_at: int = 0
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    #: the graph the thread's runs used last (its agent type)
    graph_id: str = ""
    #: the checkpointer's thread id the worker runs this thread under
    checkpoint_thread: str = ""
    #: a TTL given at creation (``ttl={"ttl": minutes}``), in seconds; 0: the default
    ttl_s: int = 0


class RunRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One LangGraph run: the Byway message it drives, and what it was asked to do."""

    run_id: str
    thread_id: str
    tenant: str
    assistant_id: str
    graph_id: str
    #: the Byway message whose execution this run is (a resume run drives the message
    #: that paused: ``message_id`` is then that one, not ``run_id``)
    message_id: str
    created_at: int = 0
    updated_at: int = 0
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    multitask_strategy: str = "enqueue"
    #: the session stream entry id the run's events come after (join from the start)
    after: str = "0"
    #: kwargs as the API shows them (input, command, stream_mode, config...)
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    #: a thread made for this run alone (``/runs/stream`` without a thread): deleted after
    stateless: bool = False
    #: status this record knows better than the execution does ("interrupted" when a
    #: cancel interrupted it, "pending" until the worker starts it)
    status: str = ""
    cancel_reason: str = ""
    #: how many times the message had waited for the user when this run was made (a run
    #: that resumes it ended at an interrupt once its execution has waited once more)
    waits_seen: int = 0


_thread_dec = msgspec.json.Decoder(ThreadRecord)
_run_dec = msgspec.json.Decoder(RunRecord)
_enc = msgspec.json.Encoder()


def _ttl(record_ttl: int) -> int:
    return record_ttl or RECORD_TTL_S


async def put_thread(redis: Any, keys: Keys, record: ThreadRecord) -> None:
    """Write ``record`` (and index it under its tenant)."""
    k = ApiKeys(keys)
    record.updated_at = record.updated_at or now_ms()
    ttl = _ttl(record.ttl_s)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(k.thread(record.thread_id), "record", _enc.encode(record))
        pipe.expire(k.thread(record.thread_id), ttl)
        pipe.zadd(k.tenant_threads(record.tenant), {record.thread_id: record.updated_at})
        pipe.expire(k.tenant_threads(record.tenant), RECORD_TTL_S)
        await pipe.execute()


async def create_thread(redis: Any, keys: Keys, record: ThreadRecord) -> bool:
    """Write ``record`` unless the thread has one already (atomic); whether it did."""
    k = ApiKeys(keys)
    record.created_at = record.created_at or now_ms()
    record.updated_at = record.updated_at or record.created_at
    key = k.thread(record.thread_id)
    if not await redis.hsetnx(key, "record", _enc.encode(record)):
        return False
    async with redis.pipeline(transaction=False) as pipe:
        pipe.expire(key, _ttl(record.ttl_s))
        pipe.zadd(k.tenant_threads(record.tenant), {record.thread_id: record.updated_at})
        pipe.expire(k.tenant_threads(record.tenant), RECORD_TTL_S)
        await pipe.execute()
    return True


async def get_thread(redis: Any, keys: Keys, thread_id: str) -> ThreadRecord | None:
    # a record that does not decode is not ours to trust: treated as absent
    return _decoded_thread(await redis.hget(ApiKeys(keys).thread(thread_id), "record"))


async def put_thread_state(redis: Any, keys: Keys, thread_id: str, state: dict[str, Any]) -> None:
    """The thread's latest state (JSON-safe, as ``GET /threads/{id}/state`` returns it)."""
    key = ApiKeys(keys).thread(thread_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(key, "state", _enc.encode(state))
        pipe.expire(key, RECORD_TTL_S)
        await pipe.execute()


async def get_thread_state(redis: Any, keys: Keys, thread_id: str) -> dict[str, Any] | None:
    return _decoded_state(await redis.hget(ApiKeys(keys).thread(thread_id), "state"))


async def get_threads(
    redis: Any, keys: Keys, thread_ids: list[str]
) -> list[tuple[ThreadRecord | None, dict[str, Any] | None]]:
    """The records and recorded states of some threads (one round trip per 200)."""
    k = ApiKeys(keys)
    found: list[tuple[ThreadRecord | None, dict[str, Any] | None]] = []
    for start in range(0, len(thread_ids), 200):
        async with redis.pipeline(transaction=False) as pipe:
            for thread_id in thread_ids[start : start + 200]:
                pipe.hmget(k.thread(thread_id), ["record", "state"])
            rows = await pipe.execute()
        for raw_record, raw_state in rows:
            found.append((_decoded_thread(raw_record), _decoded_state(raw_state)))
    return found


def _decoded_thread(raw: Any) -> ThreadRecord | None:
    if raw is None:
        return None
    try:
        return _thread_dec.decode(raw)
    except msgspec.DecodeError:
        return None


def _decoded_state(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        state = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    return state if isinstance(state, dict) else None


async def list_threads(
    redis: Any, keys: Keys, tenant: str, *, newest_first: bool = True
) -> list[str]:
    """The tenant's thread ids (newest first by default)."""
    key = ApiKeys(keys).tenant_threads(tenant)
    ids = await (redis.zrevrange(key, 0, -1) if newest_first else redis.zrange(key, 0, -1))
    return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]


async def delete_thread(redis: Any, keys: Keys, record: ThreadRecord) -> None:
    k = ApiKeys(keys)
    runs = await list_runs(redis, keys, record.thread_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.delete(k.thread(record.thread_id))
        pipe.zrem(k.tenant_threads(record.tenant), record.thread_id)
        pipe.delete(k.thread_runs(record.thread_id))
        for run_id in runs:
            pipe.delete(k.run(run_id))
        await pipe.execute()


async def put_run(redis: Any, keys: Keys, record: RunRecord) -> None:
    k = ApiKeys(keys)
    record.updated_at = now_ms()
    record.created_at = record.created_at or record.updated_at
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(k.run(record.run_id), _enc.encode(record), ex=RECORD_TTL_S)
        pipe.zadd(k.thread_runs(record.thread_id), {record.run_id: record.created_at})
        pipe.expire(k.thread_runs(record.thread_id), RECORD_TTL_S)
        await pipe.execute()


async def get_run(redis: Any, keys: Keys, run_id: str) -> RunRecord | None:
    raw = await redis.get(ApiKeys(keys).run(run_id))
    if raw is None:
        return None
    try:
        return _run_dec.decode(raw)
    except msgspec.DecodeError:
        return None


async def delete_run(redis: Any, keys: Keys, record: RunRecord) -> None:
    k = ApiKeys(keys)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.delete(k.run(record.run_id))
        pipe.zrem(k.thread_runs(record.thread_id), record.run_id)
        await pipe.execute()


async def list_runs(redis: Any, keys: Keys, thread_id: str) -> list[str]:
    """The thread's run ids, newest first."""
    ids = await redis.zrevrange(ApiKeys(keys).thread_runs(thread_id), 0, -1)
    return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
