"""A thread's checkpoints as the LangGraph Server API shows them, read without the graph.

``byway serve`` has no graph, yet ``/threads/{id}/history`` and a past checkpoint's
state must be shown. :class:`CheckpointView` reads them from the
:class:`~byway_langgraph.checkpoint.RedisCheckpointSaver` keys with a serializer that
builds nothing: :class:`CheckpointRenderer` decodes LangGraph's msgpack and renders each
stored object as plain data (a pydantic model or message as the ``model_dump()`` it was
stored with, a dataclass as its fields, a ``Send`` as ``{node, args}``, a datetime as
its ISO string), without importing or calling anything a value names.

What needs the graph is derived from the checkpoint instead, and is exact for graphs
built with ``StateGraph`` on LangGraph 1.x:

- ``values``: the graph's state channels (recorded by its worker,
  :mod:`byway_langgraph._graph_info`), else every channel but LangGraph's own
  (``__start__``, ``__pregel_*``, ``branch:to:*``...);
- ``next``: the nodes whose trigger channel (``branch:to:<node>``, ``__start__``) holds a
  value at a version newer than the node has seen, plus the nodes of pending ``Send``
  packets; this is how LangGraph picks the next tasks, read from the checkpoint;
- ``tasks``: one per ``next`` name; a task's id, interrupts and error come from the
  checkpoint's pending writes when they can be told apart (one next task and one
  writer), else its id is a stable stand-in (LangGraph derives task ids inside its
  scheduler). The thread's latest state is recorded by the worker and is exact.
"""

from __future__ import annotations

import base64
import datetime
import time
import uuid
from collections.abc import Iterable
from typing import Any

import ormsgpack

from byway.keys import Keys
from byway_langgraph._thread_state import api_json, checkpoint_ref, render_interrupt
from byway_langgraph.checkpoint import RedisCheckpointSaver
from byway_langgraph.serde import CheckpointLoadError

__all__ = ["CheckpointRenderer", "CheckpointView", "derive_next", "empty_state"]

_MAX_DEPTH = 100
_OWN_PREFIXES = ("__", "branch:", "join:", "start:")
_TASK_NAMESPACE = uuid.UUID("0b1d6f0e-3f7c-5a8e-9a43-6c1e2b7d5f10")
_SECRETS = {"SecretStr", "SecretBytes"}


class _Hook:
    """An ormsgpack ext hook that renders LangGraph's extensions as plain data."""

    def __init__(self) -> None:
        self.depth = 0
        self.refusal: CheckpointLoadError | None = None

    def __call__(self, code: int, data: bytes) -> Any:
        self.depth += 1
        try:
            if self.depth > _MAX_DEPTH:
                self.refusal = CheckpointLoadError(
                    f"msgpack extensions nested deeper than {_MAX_DEPTH}"
                )
                raise self.refusal
            inner = ormsgpack.unpackb(data, ext_hook=self, option=ormsgpack.OPT_NON_STR_KEYS)
            return _render_ext(code, inner)
        finally:
            self.depth -= 1


def _render_ext(code: int, inner: Any) -> Any:
    if code == 7:  # a delta snapshot: the value itself
        return inner
    if not (isinstance(inner, (list, tuple)) and len(inner) >= 3):
        return None  # numpy arrays and anything unknown: not shown
    module, name, arg = inner[0], inner[1], inner[2]
    if name in _SECRETS:
        return "**********"
    if code in (2, 4, 5):  # keyword arguments: dataclass fields, a model's dump
        return arg
    if code == 3:  # a method call on one argument (datetime.fromisoformat): the argument
        return arg
    if code == 0:
        if (module, name) == ("uuid", "UUID") and isinstance(arg, str):
            try:
                return str(uuid.UUID(hex=arg))
            except ValueError:
                return arg
        return arg
    if code == 1:
        return _positional(module, name, arg)
    return None


def _positional(module: Any, name: Any, args: Any) -> Any:
    if not isinstance(args, (list, tuple)):
        return args
    if name == "Send" and len(args) >= 2:
        return {"node": args[0], "args": args[1]}
    if (module, name) == ("datetime", "date") and len(args) == 3:
        try:
            return datetime.date(*(int(a) for a in args)).isoformat()
        except (TypeError, ValueError):
            return None
    if (module, name) == ("datetime", "timedelta") and len(args) == 3:
        try:
            return int(args[0]) * 86400 + int(args[1]) + int(args[2]) / 1e6
        except (TypeError, ValueError):
            return None
    if module in ("pathlib", "re") and args:
        return "/".join(str(a) for a in args) if module == "pathlib" else args[0]
    return list(args)


class CheckpointRenderer:
    """A read-only serializer for :class:`RedisCheckpointSaver`: stored values as plain
    data, nothing built (see the module's docstring)."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        raise NotImplementedError("this serializer only reads checkpoints")

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        kind, raw = data
        if kind == "null":
            return None
        if kind in ("bytes", "bytearray"):
            return base64.b64encode(raw).decode()
        if kind != "msgpack":
            return None  # a serialization this saver never writes (json, pickle): not read
        hook = _Hook()
        try:
            return ormsgpack.unpackb(raw, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)
        except (ValueError, TypeError, RecursionError, CheckpointLoadError) as exc:
            if hook.refusal is not None:  # ormsgpack hides what the hook raised
                raise hook.refusal from None
            raise CheckpointLoadError(f"not valid msgpack ({exc})") from None


def _newer(version: Any, seen: Any) -> bool:
    if seen is None:
        return True
    if isinstance(version, (int, float)) and isinstance(seen, (int, float)):
        return version > seen
    return str(version) > str(seen)


def derive_next(checkpoint: dict[str, Any]) -> list[str]:
    """The nodes a checkpoint would run next (see the module's docstring)."""
    versions = checkpoint.get("channel_versions") or {}
    seen = checkpoint.get("versions_seen") or {}
    values = checkpoint.get("channel_values") or {}
    found: set[str] = set()
    for channel, version in versions.items():
        if channel not in values:  # consumed (or never written): triggers nothing
            continue
        if channel == "__start__":
            node = "__start__"
        elif isinstance(channel, str) and channel.startswith("branch:to:"):
            node = channel[len("branch:to:") :]
        else:
            continue
        node_seen = seen.get(node)
        if not isinstance(node_seen, dict):
            node_seen = {}
        if _newer(version, node_seen.get(channel)):
            found.add(node)
    names = sorted(found)
    sends = values.get("__pregel_tasks")
    for packet in sends if isinstance(sends, list) else ():
        if isinstance(packet, dict) and isinstance(packet.get("node"), str):
            names.append(packet["node"])
    return names


def _visible(channel: str, channels: Iterable[str] | None) -> bool:
    if channels is not None:
        return channel in channels
    return not channel.startswith(_OWN_PREFIXES)


def _state_of(tup: Any, channels: list[str] | None) -> dict[str, Any]:
    checkpoint = tup.checkpoint
    ref = checkpoint_ref(tup.config) or {}
    values = {
        str(k): v
        for k, v in (checkpoint.get("channel_values") or {}).items()
        if _visible(str(k), channels)
    }
    names = derive_next(checkpoint)
    interrupts: dict[str, list[dict[str, Any]]] = {}
    errors: dict[str, str] = {}
    writers: list[str] = []
    for task_id, channel, value in tup.pending_writes or ():
        if task_id not in writers:
            writers.append(task_id)
        if channel == "__interrupt__":
            for each in value if isinstance(value, list) else [value]:
                interrupts.setdefault(task_id, []).append(render_interrupt(each or {}))
        elif channel == "__error__":
            errors[task_id] = str(value)[:2000]
    paired = len(names) == 1 and len(writers) == 1
    tasks = []
    for index, name in enumerate(names):
        task_id = writers[0] if paired else _stand_in(ref.get("checkpoint_id", ""), name, index)
        tasks.append(
            {
                "id": task_id,
                "name": name,
                "error": errors.get(task_id),
                "interrupts": interrupts.get(task_id, []),
                "checkpoint": None,
                "state": None,
                "result": None,
            }
        )
    return {
        "values": api_json(values),
        "next": names,
        "tasks": tasks,
        "metadata": api_json(tup.metadata) or {},
        "created_at": checkpoint.get("ts"),
        "checkpoint": ref,
        "parent_checkpoint": checkpoint_ref(tup.parent_config),
        "interrupts": [i for found in interrupts.values() for i in found],
    }


def _stand_in(checkpoint_id: str, name: str, index: int) -> str:
    return str(uuid.uuid5(_TASK_NAMESPACE, f"{checkpoint_id}\x00{name}\x00{index}"))


def empty_state(thread_id: str) -> dict[str, Any]:
    """The state of a thread nothing has run on yet."""
    return {
        "values": {},
        "next": [],
        "tasks": [],
        "metadata": {},
        "created_at": None,
        "checkpoint": {
            "thread_id": thread_id,
            "checkpoint_ns": "",
            "checkpoint_id": None,
            "checkpoint_map": None,
        },
        "parent_checkpoint": None,
        "interrupts": [],
    }


class CheckpointView:
    """The checkpoints of the threads of one namespace, rendered (read-only but for
    :meth:`delete`)."""

    def __init__(self, redis: Any, keys: Keys) -> None:
        self.saver = RedisCheckpointSaver(
            redis, namespace=keys.namespace, serde=CheckpointRenderer()
        )
        self.redis = redis

    async def latest_id(self, thread_id: str, checkpoint_ns: str = "") -> str | None:
        """The id of the thread's newest checkpoint (in ``checkpoint_ns``), if any."""
        newest: Any = await self.redis.zrevrangebylex(
            self.saver._ids(thread_id, checkpoint_ns), "+", "-", start=0, num=1
        )
        return newest[0].decode() if newest else None

    async def state(
        self,
        thread_id: str,
        checkpoint_id: str | None = None,
        checkpoint_ns: str = "",
        *,
        channels: list[str] | None = None,
    ) -> dict[str, Any] | None:
        """The state at a checkpoint (the newest without an id), None if there is none."""
        conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
        if checkpoint_id:
            conf["checkpoint_id"] = checkpoint_id
        tup = await self.saver.aget_tuple({"configurable": conf})
        return _state_of(tup, channels) if tup is not None else None

    async def history(
        self,
        thread_id: str,
        *,
        limit: int,
        before: str | None = None,
        metadata: dict[str, Any] | None = None,
        checkpoint_ns: str = "",
        checkpoint_id: str | None = None,
        channels: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Past states, newest first."""
        conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
        if checkpoint_id:
            conf["checkpoint_id"] = checkpoint_id
        before_config: Any = (
            {"configurable": {"thread_id": thread_id, "checkpoint_id": before}} if before else None
        )
        return [
            _state_of(tup, channels)
            async for tup in self.saver.alist(
                {"configurable": conf}, filter=metadata or None, before=before_config, limit=limit
            )
        ]

    async def delete(self, thread_id: str) -> None:
        await self.saver.adelete_thread(thread_id)

    async def copy(self, source: str, target: str) -> int:
        """Copy every checkpoint key of ``source`` to ``target`` as stored (DUMP and
        RESTORE: nothing decoded), keeping each key's TTL; how many keys were copied."""
        saver = self.saver
        members: Any = await self.redis.smembers(saver._keys(source))
        old, new = saver._thread(source), saver._thread(target)
        names = sorted(m.decode() for m in members if m.decode().startswith(old + ":"))
        copied: list[str] = []
        for name in names:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.dump(name)
                pipe.pttl(name)
                dumped, pttl = await pipe.execute()
            if dumped is None:  # expired meanwhile
                continue
            renamed = new + name[len(old) :]
            await self.redis.restore(renamed, max(int(pttl), 0), dumped, replace=True)
            copied.append(renamed)
        if copied:
            index_ttl = int(await self.redis.pttl(saver._keys(source)))
            await self.redis.sadd(saver._keys(target), *copied)
            if index_ttl > 0:
                await self.redis.pexpire(saver._keys(target), index_ttl)
            await self.redis.zadd(saver._threads(), {target: time.time()})
        return len(copied)
