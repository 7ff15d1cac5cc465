"""Starting tasks: one pipelined round trip moves a batch of new executions to RUNNING.

A START script per execution also answers "already finished" for a redelivered command
("done", "stale": acknowledged), "deferred" for a message queued behind its session's
running one, "cancelled" for one cancelled while queued, "suspect" for one whose last
run died with its worker (it runs alone) and "poison" for one that kept killing workers
(dead-lettered).
"""

from __future__ import annotations

from typing import Any

import msgspec

from byway._log import get_logger
from byway.context import AgentContext
from byway.flow import WAIT_ID_KEY, header_depth
from byway.protocol import (
    AgentState,
    AgentTaskResult,
    AskAgentCommand,
    ResumeCommand,
    new_id,
    now_ms,
)
from byway.records import ExecutionRecord, new_record, started_record
from byway.runtime.ender import Ender
from byway.runtime.executor import Executor
from byway.runtime.history import is_root_ask
from byway.runtime.plugin_host import PluginHost
from byway.runtime.recovery import Recovery
from byway.runtime.services import WorkerServices
from byway.runtime.slots import Running, Start
from byway.store.script import execute
from byway.store.start import StartArgs, StartReply, queue_start

__all__ = ["Starter"]

log = get_logger("byway.worker")


class Starter:
    """Starts batches of tasks (and drops or ends those that must not run)."""

    def __init__(
        self,
        services: WorkerServices,
        executor: Executor,
        ender: Ender,
        plugin_host: PluginHost,
        recovery: Recovery,
    ) -> None:
        self.services = services
        self.executor = executor
        self.ender = ender
        self.plugin_host = plugin_host
        self.recovery = recovery

    async def _complete_groups(self, starts: list[Start]) -> list[Start]:
        """Drop (acknowledge) a task group's Resume while its group has not completed: only
        the last member's report sends one, so any other is forged or stray."""
        groups = [
            (i, s[2].header.task_group_id)
            for i, s in enumerate(starts)
            if isinstance(s[2], ResumeCommand)
            and s[2].header.task_group_id
            and not s[2].header.parent_message_id
        ]
        if not groups:
            return starts
        svc = self.services
        async with svc.redis.pipeline(transaction=False) as pipe:
            for _, group_id in groups:
                pipe.hmget(svc.keys.task_group(group_id), "total", "completed")
            counts = await pipe.execute()
        early: set[int] = set()
        for (i, group_id), (total, completed) in zip(groups, counts, strict=True):
            if not total or int(completed or 0) < int(total):
                early.add(i)
                stream, entry_id, command, _ = starts[i]
                log.warning("resume of %s for group %s before the group completed: dropped",
                            command.header.message_id, group_id)  # fmt: skip
                await svc.ack(stream, entry_id)
        return [s for i, s in enumerate(starts) if i not in early]

    async def start_batch(self, starts: list[Start], *, alone: bool = False) -> None:
        starts = await self._complete_groups(starts)
        if not starts:
            return
        s = self.services
        now = now_ms()
        worker_id = s.worker_id
        lease_ms = s.info.lease_ms
        k = s.keys
        outbox = s.outbox.enabled
        # the session's history comes with the start (Redis store: no extra command)
        history = s.history
        history_limit = history.start_limit
        async with s.redis.pipeline(transaction=False) as pipe:
            for stream, entry_id, command, raw in starts:
                h = command.header
                record = new_record(
                    execution_id="",
                    message_id=h.message_id,
                    session_id=h.session_id,
                    trace_id=h.trace_id,
                    status=AgentState.QUEUED,
                    target_agent_type=s.streams.get(stream) or h.target_agent_type,
                    source_agent_type=h.source_agent_type,
                    parent_message_id=h.parent_message_id,
                    task_group_id=h.task_group_id,
                    user_code=h.user_code,
                    depth=header_depth(h.metadata),
                    now=now,
                )
                is_resume = isinstance(command, ResumeCommand)
                queue_start(
                    pipe,
                    StartArgs(
                        keyspace=k,
                        session_id=h.session_id,
                        message_id=h.message_id,
                        execution_id=new_id("exec"),
                        worker_id=worker_id,
                        now_ms=now,
                        record=record,
                        lock_lease_ms=lease_ms,
                        entry_id=entry_id,
                        stream=stream,
                        kind="resume" if is_resume else "ask",
                        resume_from=h.parent_message_id if is_resume else "",
                        resume_wait_id=str(h.metadata.get(WAIT_ID_KEY, "")) if is_resume else "",
                        resume_group_id=h.task_group_id if is_resume else "",
                        command=raw,
                        record_ttl_s=s.config.session_ttl_seconds,
                        lock_grace_ms=s.flow.lock_grace_ms,
                        max_solo_runs=s.config.max_deliveries,
                        alone=alone,
                        # outbox mode: we add a deferred session to the set ourselves
                        outbox=outbox,
                        config_version=self.plugin_host.config_version,
                        history_limit=history_limit,
                    ),
                )
            results = await execute(s.redis, pipe)
        started: list[ExecutionRecord] = []  # of the executions that run (execution log)
        for (stream, entry_id, command, raw), result in zip(starts, results, strict=True):
            if isinstance(result, Exception):
                log.error("could not start %s: %s", command.header.message_id, result)
                continue  # stays pending: recovered later
            reply = StartReply.decode(result)
            verdict, execution_id = reply.verdict, reply.execution_id
            if verdict == "suspect":
                # its last run died with its worker: it runs alone, so that if it is what
                # kills workers it takes no other task with it
                log.warning(
                    "%s was interrupted before: it will run alone", command.header.message_id
                )
                s.slots.quarantine.append((stream, entry_id, command, raw))
                continue
            if verdict in ("done", "stale", "deferred"):
                log.debug(
                    "%s is %s (%s): acknowledged",
                    command.header.message_id,
                    verdict,
                    reply.note,
                )
                if isinstance(command, ResumeCommand):
                    agent_type = s.streams.get(stream) or command.header.target_agent_type
                    await s.answers.not_taken(
                        command.header, entry_id, verdict, reply.note, agent_type
                    )
                if s.outbox.forwards:  # what the script left for us to send
                    await s.outbox.after_start(command, reply)
                await s.ack(stream, entry_id)
                continue
            agent_type = s.streams.get(stream) or command.header.target_agent_type
            origin: ExecutionRecord | None = None
            state: dict[str, Any] | None = None
            if verdict in ("run", "poison"):
                try:
                    origin = started_record(reply.record, command.header)
                except (msgspec.DecodeError, ValueError) as exc:  # not JSON: the header counts
                    log.error("record of %s unreadable (%s)", command.header.message_id, exc)
                if verdict == "run" and origin is not None and history.execution_log is not None:
                    started.append(origin)
            if verdict == "run" and reply.state:
                try:
                    state = msgspec.json.decode(reply.state)
                except (msgspec.DecodeError, ValueError) as exc:
                    log.error("state of %s unreadable (%s)", command.header.message_id, exc)
            running = Running(
                context=AgentContext(
                    s,
                    command,
                    execution_id=execution_id,
                    agent_type=agent_type,
                    record=origin,
                    state=state,
                ),
                stream=stream,
                entry_id=entry_id,
                agent_type=agent_type,
            )
            if verdict == "cancelled":
                reason = reply.reason
                await self.ender.finish(
                    running,
                    AgentTaskResult(status=AgentState.CANCELLED),
                    {"type": "Cancelled", "message": reason or "cancelled before it started"},
                )
                continue
            if verdict == "poison":
                await self._give_up(running, raw, reply.runs)
                continue
            if history_limit and verdict == "run" and is_root_ask(command):
                assert isinstance(command, AskAgentCommand)
                history.from_start(command, reply.history)
            self.executor.launch(running, suspect=alone)
        if started:
            await history.log_records(started)

    async def _give_up(self, running: Running, raw: bytes, runs: int) -> None:
        """A task that keeps killing its workers: dead-letter it and end it FAILED."""
        record = self.recovery.dead_letter_record(running.stream, running.entry_id, raw, runs)
        s = self.services
        await s.redis.xadd(s.keys.dead_letters(), {"data": record}, maxlen=10_000, approximate=True)
        log.error("dead-lettered %s after %d runs died", running.context.message_id, runs)
        message = (
            f"its worker died each of the {runs} times it ran alone; "
            "moved to the dead-letter stream"
        )
        await self.ender.finish(
            running,
            AgentTaskResult(status=AgentState.FAILED, content=message),
            {"type": "DeadLettered", "message": message},
        )
