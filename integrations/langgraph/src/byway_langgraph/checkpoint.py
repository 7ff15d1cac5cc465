"""A LangGraph checkpointer on plain Redis (6.2+, standalone or Cluster).

Graph state must outlive the worker that ran a step: the next step, a resume after an
interrupt or the retry after a crash may run on any worker. So the default checkpointer
lives in the Redis the scheduler already uses. LangGraph's own Redis saver needs Redis
Stack (RediSearch, RedisJSON), which plain Redis, the embedded server and most managed
offerings do not have; this one uses only hashes, sorted sets and sets.

Layout, all keys of one thread under one hash tag (one Cluster slot)::

    <ns>:lg:{<thread>}:ids:<cns>          sorted set (lex order) of checkpoint ids
    <ns>:lg:{<thread>}:ck:<cns>:<id>      hash: checkpoint, metadata (typed), parent id
    <ns>:lg:{<thread>}:blobs:<cns>        hash: "<channel>\\0<version>" -> typed value
    <ns>:lg:{<thread>}:wr:<cns>:<id>      hash: "<task id>\\0<idx>" -> pending write
    <ns>:lg:{<thread>}:namespaces         set of the thread's checkpoint namespaces
    <ns>:lg:{<thread>}:keys               set of every key above (delete_thread)
    <ns>:lg:threads                       sorted set: thread id -> last write (list() over all)

With ``ttl_seconds`` every checkpoint renews the TTL of what the thread's current state
needs (its ids, blobs and newest checkpoint); older checkpoints and their writes expire
that long after they were written.

Channel values are stored once per (channel, version), so a checkpoint only writes the
channels that changed. Writes to the same (task, idx) are kept first-write-wins, except
LangGraph's special channels (errors, interrupts...), whose latest write wins.

Nothing read back runs code: values load through :class:`~byway_langgraph.serde.
StrictSerializer`, which rebuilds only allowed types (LangGraph's safe ones, LangChain's
messages and documents, the served graph's state types, ``allowed_types=`` and
``BYWAY_CHECKPOINT_ALLOWED_TYPES``) and raises :class:`CheckpointLoadError` for anything
else, naming the key and field it came from.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any, cast

import msgspec
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)

from byway import ConfigurationError, RedisSettings
from byway.keys import DEFAULT_NAMESPACE
from byway_langgraph._sync_bridge import LoopBridgedSaver
from byway_langgraph.serde import (
    CheckpointLoadError,
    StrictSerializer,
    TypeSpec,
    env_types,
    parse_types,
)

__all__ = ["RedisCheckpointSaver"]

_SEP = "\x00"


def _typed(value: tuple[str, bytes]) -> bytes:
    """A serializer's (type, bytes) as one Redis value."""
    return value[0].encode() + b"\x00" + value[1]


def _untyped(raw: bytes) -> tuple[str, bytes]:
    kind, _, data = raw.partition(b"\x00")
    return kind.decode(errors="backslashreplace"), data  # an odd tag is refused by name


#: a pending write as stored: task id, channel, serialized type, bytes, task path, index
_WriteRow = tuple[str, str, str, bytes, str, int]


class RedisCheckpointSaver(LoopBridgedSaver):
    """Checkpoints on plain Redis, shared by every worker. Async at heart (Byway runs
    graphs with ``astream``); a sync call from another thread (a sync node calling
    ``subgraph.invoke()``) runs on the loop the saver serves, and one from that loop's own
    thread raises ``RuntimeError`` (it would block the loop).

    ``RedisCheckpointSaver(redis)`` takes a ``redis.asyncio`` client (bytes responses);
    ``RedisCheckpointSaver.from_settings(settings)`` builds one for Byway's Redis.

    Loading rebuilds only allowed types; ``allowed_types`` (classes, ``"module:Name"``)
    adds to them, as does ``BYWAY_CHECKPOINT_ALLOWED_TYPES`` (read here). A ``serde`` of
    your own replaces that safeguard: it then decides what loading may run.
    """

    def __init__(
        self,
        redis: Any,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        ttl_seconds: int | None = None,
        serde: Any = None,
        allowed_types: Iterable[TypeSpec] = (),
    ):
        allowed = parse_types(allowed_types)
        if serde is not None and allowed:
            raise ConfigurationError(
                "allowed_types: applies to the default serializer; "
                "with serde=... give that serializer its allow-list"
            )
        if serde is None:
            serde = StrictSerializer([*allowed, *env_types()])
        super().__init__(serde=serde)
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds: expected a positive number, got {ttl_seconds}")
        self.redis = redis
        self.prefix = f"{namespace}:lg"
        #: a thread's keys expire this long after its last checkpoint (None: kept); every
        #: checkpoint renews what the thread's current state needs
        self.ttl_seconds = ttl_seconds

    @classmethod
    def from_settings(
        cls,
        settings: RedisSettings | None = None,
        *,
        ttl_seconds: int | None = None,
        allowed_types: Iterable[TypeSpec] = (),
    ) -> RedisCheckpointSaver:
        settings = settings or RedisSettings.from_env()
        return cls(
            settings.client(),
            namespace=settings.namespace,
            ttl_seconds=ttl_seconds,
            allowed_types=allowed_types,
        )

    # -- keys -----------------------------------------------------------------------------

    def _thread(self, thread_id: str) -> str:
        return f"{self.prefix}:{{{thread_id}}}"

    def _ids(self, thread_id: str, ns: str) -> str:
        return f"{self._thread(thread_id)}:ids:{ns}"

    def _ck(self, thread_id: str, ns: str, checkpoint_id: str) -> str:
        return f"{self._thread(thread_id)}:ck:{ns}:{checkpoint_id}"

    def _blobs(self, thread_id: str, ns: str) -> str:
        return f"{self._thread(thread_id)}:blobs:{ns}"

    def _writes(self, thread_id: str, ns: str, checkpoint_id: str) -> str:
        return f"{self._thread(thread_id)}:wr:{ns}:{checkpoint_id}"

    def _keys(self, thread_id: str) -> str:
        return f"{self._thread(thread_id)}:keys"

    def _namespaces(self, thread_id: str) -> str:
        return f"{self._thread(thread_id)}:namespaces"

    def _threads(self) -> str:
        return f"{self.prefix}:threads"

    # -- writing ----------------------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        self._bind_loop()
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), str(conf.get("checkpoint_ns", ""))
        body = dict(checkpoint)
        values: dict[str, Any] = body.pop("channel_values", {})  # type: ignore[assignment]
        blobs = {
            f"{channel}{_SEP}{version}": _typed(
                self.serde.dumps_typed(values[channel]) if channel in values else ("empty", b"")
            )
            for channel, version in new_versions.items()
        }
        ck_key = self._ck(thread_id, ns, checkpoint["id"])
        fields = {
            "checkpoint": _typed(self.serde.dumps_typed(body)),
            "metadata": _typed(self.serde.dumps_typed(get_checkpoint_metadata(config, metadata))),
            "parent": str(conf.get("checkpoint_id") or ""),
        }
        async with self.redis.pipeline(transaction=False) as pipe:
            if blobs:
                pipe.hset(self._blobs(thread_id, ns), mapping=blobs)
            pipe.hset(ck_key, mapping=fields)
            pipe.zadd(self._ids(thread_id, ns), {checkpoint["id"]: 0})
            pipe.sadd(self._namespaces(thread_id), ns)
            touched = [
                ck_key,
                self._ids(thread_id, ns),
                self._blobs(thread_id, ns),
                self._namespaces(thread_id),
            ]
            pipe.sadd(self._keys(thread_id), *touched)
            if self.ttl_seconds:
                for key in [*touched, self._keys(thread_id)]:
                    pipe.expire(key, self.ttl_seconds)
            # the thread index (another slot on a Cluster, where the pipeline splits by node)
            now = time.time()
            pipe.zadd(self._threads(), {thread_id: now})
            if self.ttl_seconds:
                pipe.zremrangebyscore(self._threads(), "-inf", now - self.ttl_seconds)
            await pipe.execute()
        return _config(thread_id, ns, checkpoint["id"])

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._bind_loop()
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), str(conf.get("checkpoint_ns", ""))
        key = self._writes(thread_id, ns, str(conf["checkpoint_id"]))
        async with self.redis.pipeline(transaction=False) as pipe:
            for idx, (channel, value) in enumerate(writes):
                slot = WRITES_IDX_MAP.get(channel, idx)
                field = f"{task_id}{_SEP}{slot}"
                data = msgspec.msgpack.encode(
                    [task_id, channel, *self.serde.dumps_typed(value), task_path, slot]
                )
                if slot >= 0:
                    pipe.hsetnx(key, field, data)  # a retried task does not overwrite
                else:
                    pipe.hset(key, field, data)  # special channels: the latest wins
            pipe.sadd(self._keys(thread_id), key)
            if self.ttl_seconds:
                pipe.expire(key, self.ttl_seconds)
            await pipe.execute()

    async def adelete_thread(self, thread_id: str) -> None:
        self._bind_loop()
        thread_id = str(thread_id)
        keys: Any = await self.redis.smembers(self._keys(thread_id))
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.delete(key)
            pipe.delete(self._keys(thread_id))
            await pipe.execute()
        await self.redis.zrem(self._threads(), thread_id)

    # -- reading ----------------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        self._bind_loop()
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), str(conf.get("checkpoint_ns", ""))
        checkpoint_id = get_checkpoint_id(config)
        if not checkpoint_id:
            latest: Any = await self.redis.zrevrangebylex(
                self._ids(thread_id, ns), "+", "-", start=0, num=1
            )
            if not latest:
                return None
            checkpoint_id = latest[0].decode()
        found = await self._load(thread_id, ns, [checkpoint_id])
        return found[0] if found else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        self._bind_loop()
        if config is not None:
            threads = [str(config["configurable"]["thread_id"])]
        else:
            threads = sorted(t.decode() for t in await self.redis.zrange(self._threads(), 0, -1))
        wanted_ns = config["configurable"].get("checkpoint_ns") if config else None
        wanted_id = get_checkpoint_id(config) if config else None
        before_id = get_checkpoint_id(before) if before else None
        left = limit
        for thread_id in threads:
            if wanted_ns is not None:
                namespaces = [str(wanted_ns)]
            else:
                raw: Any = await self.redis.smembers(self._namespaces(thread_id))
                namespaces = sorted(n.decode() for n in raw)
            for ns in namespaces:
                top = f"({before_id}" if before_id else "+"
                ids: Any = await self.redis.zrevrangebylex(self._ids(thread_id, ns), top, "-")
                candidates = [i.decode() for i in ids]
                if wanted_id:
                    candidates = [i for i in candidates if i == wanted_id]
                for chunk in _chunks(candidates, 50):
                    for item in await self._load(thread_id, ns, chunk):
                        if filter and not all(item.metadata.get(k) == v for k, v in filter.items()):
                            continue
                        if left is not None:
                            if left <= 0:
                                return
                            left -= 1
                        yield item

    async def _load(
        self, thread_id: str, ns: str, checkpoint_ids: list[str]
    ) -> list[CheckpointTuple]:
        """The tuples of some checkpoints of one thread and namespace (two round trips)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for checkpoint_id in checkpoint_ids:
                pipe.hgetall(self._ck(thread_id, ns, checkpoint_id))
                pipe.hgetall(self._writes(thread_id, ns, checkpoint_id))
            raw: list[Any] = await pipe.execute()
        loaded = []
        for i, checkpoint_id in enumerate(checkpoint_ids):
            stored, writes = raw[2 * i], raw[2 * i + 1]
            if not stored:
                continue
            key = self._ck(thread_id, ns, checkpoint_id)
            checkpoint = self._loads(stored.get(b"checkpoint"), key, "checkpoint")
            versions = checkpoint.get("channel_versions") if isinstance(checkpoint, dict) else None
            if not isinstance(versions, dict):
                raise CheckpointLoadError(
                    f"{key!r} field 'checkpoint': expected a checkpoint with channel_versions"
                )
            loaded.append((checkpoint_id, stored, writes, checkpoint))
        if not loaded:
            return []
        wanted = sorted(
            {
                f"{channel}{_SEP}{version}"
                for _, _, _, checkpoint in loaded
                for channel, version in checkpoint["channel_versions"].items()
            }
        )
        blobs: dict[str, Any] = {}
        blobs_key = self._blobs(thread_id, ns)
        if wanted:
            values: Any = await self.redis.hmget(blobs_key, wanted)
            blobs = {k: v for k, v in zip(wanted, values, strict=True) if v is not None}
        out = []
        for checkpoint_id, stored, writes, checkpoint in loaded:
            channel_values = {}
            for channel, version in checkpoint["channel_versions"].items():
                field = f"{channel}{_SEP}{version}"
                blob = blobs.get(field)
                if blob is None or blob.startswith(b"empty\x00"):
                    continue
                channel_values[channel] = self._loads(blob, blobs_key, field)
            key = self._ck(thread_id, ns, checkpoint_id)
            metadata = self._loads(stored.get(b"metadata"), key, "metadata")
            if not isinstance(metadata, dict):
                raise CheckpointLoadError(f"{key!r} field 'metadata': expected a mapping")
            parent = stored.get(b"parent", b"").decode(errors="replace")
            out.append(
                CheckpointTuple(
                    config=_config(thread_id, ns, checkpoint_id),
                    checkpoint=cast(Checkpoint, {**checkpoint, "channel_values": channel_values}),
                    metadata=cast(CheckpointMetadata, metadata),
                    parent_config=_config(thread_id, ns, parent) if parent else None,
                    pending_writes=self._pending(
                        self._writes(thread_id, ns, checkpoint_id), writes
                    ),
                )
            )
        return out

    def _loads(self, raw: bytes | tuple[str, bytes] | None, key: str, field: str | bytes) -> Any:
        """One stored value, through the serializer's allow-list; a refusal names where."""
        shown = field.decode(errors="replace") if isinstance(field, bytes) else field
        try:
            if raw is None:
                raise CheckpointLoadError("missing")
            return self.serde.loads_typed(_untyped(raw) if isinstance(raw, bytes) else raw)
        except CheckpointLoadError as exc:
            raise CheckpointLoadError(f"{key!r} field {shown!r}: {exc}") from None

    def _pending(self, key: str, writes: dict[bytes, bytes]) -> list[tuple[str, str, Any]]:
        rows: list[tuple[bytes, _WriteRow]] = []
        for field, value in writes.items():
            try:
                rows.append((field, msgspec.msgpack.decode(value, type=_WriteRow)))
            except msgspec.DecodeError as exc:
                shown = field.decode(errors="replace")
                raise CheckpointLoadError(f"{key!r} field {shown!r}: bad write ({exc})") from None
        rows.sort(key=lambda r: writes_sort_key(r[1][4], r[1][0], r[1][5]))
        return [
            (task, channel, self._loads((kind, data), key, field))
            for field, (task, channel, kind, data, _, _) in rows
        ]

    # -- versions -----------------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Increasing string versions: a zero-padded counter, then a random tie-breaker
        (two workers forking one thread do not collide)."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(str(current).split(".", 1)[0])
        return f"{number + 1:032d}.{random.randrange(10**16):016d}"


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    """The config that names one checkpoint."""
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
