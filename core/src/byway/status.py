"""``byway status``: live workers, and per agent type the queue length and pending work.

``queued`` counts what waits for a worker: the agent type's stream lag, plus the messages
queued in sessions behind a task the session runs (one writer per session), which sit in
the session's queue rather than the stream until that task ends (``in_sessions``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from byway.client import GatewayClient
from byway.protocol import now_ms

__all__ = ["collect_status", "print_status"]


async def collect_status(client: GatewayClient, *, group: str = "agent_engines") -> dict[str, Any]:
    """Workers with a live lease, and each agent type's stream length, lag and pending."""
    keys = client.keys
    workers = await client.registry.list_workers()
    agent_types: set[str] = {t for w in workers for t in w.agent_types}
    prefix = keys.agent_stream_prefix()
    async for raw in client.redis.scan_iter(match=f"{prefix}*", count=500, _type="STREAM"):
        name = raw.decode()[len(prefix) :]
        agent_types.add(name.strip("{}"))
    behind = await _queued_in_sessions(client)
    agent_types |= set(behind)
    queues = []
    for agent_type in sorted(agent_types):
        stream = keys.agent_stream(agent_type)
        length = await client.redis.xlen(stream)
        pending = lag = 0
        consumers = 0
        try:
            for info in await client.redis.xinfo_groups(stream):
                if info["name"].decode() == group:
                    pending = int(info["pending"])
                    lag = int(info.get("lag") or 0)
                    consumers = int(info["consumers"])
        except ResponseError:
            pass  # no such stream yet
        online = [w.worker_id for w in workers if agent_type in w.agent_types]
        queues.append(
            {
                "agent_type": agent_type,
                "stream_length": length,
                "pending": pending,
                "lag": lag,
                "in_sessions": behind[agent_type],
                "queued": lag + behind[agent_type],
                "consumers": consumers,
                "online_workers": online,
            }
        )
    now = now_ms()
    return {
        "workers": [
            {
                "worker_id": w.worker_id,
                "agent_types": w.agent_types,
                "host": w.hostname,
                "pid": w.pid,
                "running": w.running,
                "max_concurrency": w.max_concurrency,
                "heartbeat_age_s": round((now - w.heartbeat_at) / 1000, 1),
            }
            for w in workers
        ],
        "agent_types": queues,
    }


class _Header(msgspec.Struct):
    target_agent_type: str = ""


class _Queued(msgspec.Struct):
    header: _Header


_queued_decoder = msgspec.json.Decoder(_Queued)
#: items read per session queue; the rest of a longer queue counts as its last item's type
_ITEMS_READ = 200


async def _queued_in_sessions(client: GatewayClient) -> Counter[str]:
    """Messages queued behind their session's running (or waiting) task, by agent type."""
    counts: Counter[str] = Counter()
    redis = client.redis
    async for raw in redis.sscan_iter(client.keys.queued_sessions(), count=500):
        queue = client.keys.session_queue(raw.decode())
        items: Any = await redis.lrange(queue, 0, _ITEMS_READ - 1)
        agent_type = ""
        for item in items:
            try:
                data = msgspec.json.decode(item).get("data", "")
                agent_type = _queued_decoder.decode(data).header.target_agent_type
            except (msgspec.DecodeError, AttributeError, TypeError):
                continue  # not a queue item Byway wrote: not counted
            counts[agent_type] += 1
        if len(items) == _ITEMS_READ and agent_type:
            counts[agent_type] += max(0, int(await redis.llen(queue)) - _ITEMS_READ)
    return counts


def print_status(report: dict[str, Any], where: str) -> None:
    print(f"redis: {where}")
    workers = report["workers"]
    print(f"\nworkers online: {len(workers)}")
    if workers:
        print(f"  {'worker id':<36} {'agent types':<24} {'host:pid':<24} {'running':>9}  heartbeat")
        for w in workers:
            running = f"{w['running']}/{w['max_concurrency']}"
            print(
                f"  {w['worker_id']:<36} {','.join(w['agent_types']):<24} "
                f"{w['host'] + ':' + str(w['pid']):<24} {running:>9}  {w['heartbeat_age_s']}s ago"
            )
    queues = report["agent_types"]
    print(f"\nagent types: {len(queues)}")
    if queues:
        print(
            f"  {'agent type':<24} {'online':>6} {'queued':>6} {'(in sessions)':>13} "
            f"{'pending':>8} {'length':>8}"
        )
        for q in queues:
            print(
                f"  {q['agent_type']:<24} {len(q['online_workers']):>6} {q['queued']:>6} "
                f"{q['in_sessions']:>13} {q['pending']:>8} {q['stream_length']:>8}"
            )
