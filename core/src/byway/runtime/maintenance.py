"""Maintenance: what keeps a worker and its sessions healthy beside the consume loop.

The heartbeat renews the worker's lease and its running roots' session locks, keeps
its pending entries fresh and takes over a dead worker's; the sweeps resume waits whose
deadline passed, hand sessions whose running root's worker died on to their queued
messages and trim the control streams. :class:`Membership` writes again what Redis
lost of the worker (its lease, membership, strategies, consumer groups).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from redis.exceptions import RedisError

from byway._log import get_logger
from byway.flow import TIMEOUT_STATUS, WAIT_ID_KEY, Flow
from byway.protocol import MessageHeader, ResumeCommand, encode_command, new_id, now_ms
from byway.runtime.intake import Intake
from byway.runtime.recovery import Recovery
from byway.runtime.services import WorkerServices
from byway.store.script import execute
from byway.store.session import KickSessionArgs, RenewLockArgs, kick_session, queue_renew_lock
from byway.store.waits import ClaimDeadlinesArgs, claim_deadlines

__all__ = ["Maintenance", "Membership"]

log = get_logger("byway.worker")


class Membership:
    """The worker's lease, agent-type membership, strategies and consumer groups."""

    def __init__(self, services: WorkerServices, recovery: Recovery) -> None:
        self.services = services
        self.recovery = recovery
        self._rejoin_lock = asyncio.Lock()

    def strategies(self) -> dict[str, str]:
        s = self.services
        return dict.fromkeys(s.agent_types, s.config.multitask_strategy)

    async def rejoin(self, lease: int | None = None, *, groups: bool = False) -> bool:
        """Write again what Redis lost of this worker: its lease, its membership of its
        agent types, their strategies and (``groups``: a read answered NOGROUP, or
        anything else was lost) its consumer groups. Redis loses them on a restart without
        persistence, a failover to an empty replica or a flush; without them the worker
        reads nothing and no client finds it. What was re-created is logged once at
        WARNING (the next look finds it in place). ``lease``: the heartbeat's renewal
        already made. False when another process took the worker id (we stop)."""
        async with self._rejoin_lock:  # the heartbeat and a reader may find it at once
            return await self._rejoin_locked(lease, groups)

    async def _rejoin_locked(self, lease: int | None, groups: bool) -> bool:
        s = self.services
        if lease is None:
            lease = await s.registry.renew_lease(s.info)
        if not lease:
            log.error("worker id %s was taken by another process; stopping",
                      s.worker_id)  # fmt: skip
            s.stopping.set()
            return False
        lost = ["its lease"] if lease == 2 else []
        lost += await s.registry.rejoin(s.info, self.strategies())
        if groups or lost:
            created = await self.recovery.ensure_groups()
            if created:
                lost.append(f"{created} consumer group(s)")
        if lost:
            log.warning(
                "worker %s: Redis had lost %s (restarted without persistence, failed over "
                "or flushed?); re-created",
                s.worker_id,
                ", ".join(lost),
            )
        return True


class Maintenance:
    """The heartbeat and the sweeps of one runner."""

    def __init__(
        self,
        services: WorkerServices,
        recovery: Recovery,
        membership: Membership,
        intake: Intake,
    ) -> None:
        self.services = services
        self.recovery = recovery
        self.membership = membership
        self.intake = intake

    async def heartbeat_loop(self) -> None:
        s = self.services
        interval = s.config.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                s.info.running = len(s.slots.running)
                await self._renew_session_locks()
                await self.recovery.refresh()
                lease = await s.registry.renew_lease(s.info)
                s.redis_ok_at = time.monotonic()
                if not await self.membership.rejoin(lease):
                    return
                claimed = await self.recovery.reclaim()
                if claimed:
                    s.slots.backlog.extend(await self.intake.decode(claimed))
            except RedisError as exc:
                log.warning("heartbeat failed (%s); retrying", exc)
            except Exception:  # a bug must not stop the heartbeat for good
                log.exception("heartbeat failed; retrying")

    async def _renew_session_locks(self) -> None:
        """Keep the sessions of running root tasks: a dead worker's lock lapses with it."""
        s = self.services
        roots = [r.context for r in s.slots.running.values() if r.context.is_root]
        if not roots:
            return
        async with s.redis.pipeline(transaction=False) as pipe:
            for ctx in roots:
                queue_renew_lock(
                    pipe,
                    RenewLockArgs(
                        keyspace=s.keys,
                        session_id=ctx.session_id,
                        message_id=ctx.message_id,
                        lease_ms=s.info.lease_ms,
                    ),
                )
            await execute(s.redis, pipe)

    async def deadline_loop(self) -> None:
        """Resume waits whose deadline passed (any worker may; each wait goes to one), and
        hand sessions whose running root's worker died on to their queued messages."""
        s = self.services
        sweeps = 0
        while True:
            await asyncio.sleep(s.config.sweep_interval)
            sweeps += 1
            try:
                due = await claim_deadlines(
                    s.redis, ClaimDeadlinesArgs(keyspace=s.keys, now_ms=now_ms())
                )
                for raw in due:
                    try:
                        await self._expire_wait(msgspec.json.decode(raw))
                    except (RedisError, KeyError, msgspec.DecodeError) as exc:
                        log.warning("could not expire a wait (%s); it is due again in 30s", exc)
                        continue
                    await s.redis.zrem(s.keys.deadlines(), raw)
                if sweeps % 10 == 0:
                    await self._kick_orphaned_sessions()
                if sweeps % 20 == 0:
                    trimmed = await self.recovery.trim()
                    if trimmed:
                        log.debug("trimmed %d acknowledged entries", trimmed)
            except RedisError as exc:
                log.warning("deadline sweep failed (%s); retrying", exc)
            except Exception:  # a bug must not stop the sweeps for good
                log.exception("deadline sweep failed; retrying")

    async def _expire_wait(self, wait: dict[str, Any]) -> None:
        s = self.services
        session = wait["session_id"]
        current: Any = await s.redis.hget(
            s.keys.session_registry(session), f"wait:{wait['execution_id']}"
        )
        if not current or msgspec.json.decode(current).get("wait_id") != wait["wait_id"]:
            return  # the wait ended before its deadline
        command = ResumeCommand(
            header=MessageHeader(
                message_id=wait["message_id"],
                session_id=session,
                trace_id=wait.get("trace_id") or new_id("trace"),
                target_agent_type=wait["agent_type"],
                metadata={WAIT_ID_KEY: wait["wait_id"]},
            ),
            status=TIMEOUT_STATUS,
            reply_data={"error": "timeout", "waiting_for": wait.get("children", [])},
        )
        stream = s.keys.agent_stream(wait["agent_type"])
        await s.redis.xadd(stream, {"data": s.flow.seal(stream, encode_command(command))})
        for child in wait.get("children", []):
            await s.flow.cancel_tree(
                session,
                child,
                reason="the caller stopped waiting (timeout)",
                requested_by="deadline",
                notify_caller=False,
            )

    async def _kick_orphaned_sessions(self) -> None:
        s = self.services
        k = s.keys
        sessions: Any = await s.redis.srandmember(k.queued_sessions(), 100)
        for raw in sessions or []:
            session = raw.decode()
            kicked = await kick_session(
                s.redis,
                KickSessionArgs(
                    keyspace=k,
                    session_id=session,
                    lock_grace_ms=s.flow.lock_grace_ms,
                    outbox=s.outbox.enabled,
                ),
            )
            if kicked.empty:
                await s.redis.srem(k.queued_sessions(), session)
            elif not kicked.busy:
                handed = Flow.handed_item(kicked.handed)
                if handed:
                    await s.flow.forward([handed])
                log.info(
                    "session %s had no running task: handed on to %s", session, kicked.message_id
                )
