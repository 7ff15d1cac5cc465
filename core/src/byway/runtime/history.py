"""The history sink: where a root task's turns go and where its history comes from.

One object, chosen once when a history store is installed (:func:`history_sink`):

- :class:`ScriptHistory` for the Redis store: the START script reads the session's history
  with the start and FINISH / the suspend pipeline write the turns (no extra command);
- :class:`StoreHistory` for any other store: read before the handler runs and written
  before the end, each call bounded by ``history_timeout_seconds``.

Either may carry the store's :class:`~byway.history.ExecutionLog`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from redis.exceptions import RedisError

from byway._log import get_logger
from byway.history import ExecutionLog, HistoryEntry, HistoryStore, RedisHistoryStore
from byway.protocol import AgentState, AgentTaskResult, AskAgentCommand, now_ms
from byway.store.finish import HistoryTurns

if TYPE_CHECKING:
    from byway.config import RunnerConfig
    from byway.context import AgentContext
    from byway.records import ExecutionRecord
    from byway.registry import WorkerRegistry

__all__ = ["HistorySink", "ScriptHistory", "StoreHistory", "history_sink", "is_root_ask"]

log = get_logger("byway.worker")
_json = msgspec.json.Encoder()
_T = TypeVar("_T")


def is_root_ask(command: Any) -> bool:
    h = command.header
    return isinstance(command, AskAgentCommand) and (
        h.source_agent_type in ("", "client") and not h.parent_message_id
    )


class HistorySink:
    """What the runtime does with history; the store itself is :attr:`store`.

    The flags say where the work happens, so that the task path awaits nothing it does
    not need: ``start_limit`` turns come with START (0: none there), ``reads_before_run``
    (read by :meth:`read` before the handler), ``writes_outside`` (turns written by
    :meth:`write`, not by the scripts)."""

    start_limit = 0
    reads_before_run = False
    writes_outside = False

    def __init__(self, store: HistoryStore, config: RunnerConfig, registry: WorkerRegistry) -> None:
        self.store = store
        self.config = config
        self.registry = registry
        #: the store's execution log, if it keeps one (None: no work at all)
        self.execution_log: ExecutionLog | None = store if isinstance(store, ExecutionLog) else None
        #: a history call timed out and was logged (at WARNING once, until one succeeds)
        self._slow = False

    # -- where the turns go ------------------------------------------------------------------

    def from_start(self, command: AskAgentCommand, raw: Any) -> None:
        """Hand a root task the history START read with its start."""

    def finish_args(self, ctx: AgentContext, final: AgentTaskResult) -> HistoryTurns:
        """FINISH's history arguments (none: FINISH writes no turns)."""
        return HistoryTurns()

    def queue_suspend(self, pipe: Any, session_id: str, turns: list[HistoryEntry]) -> list[Any]:
        """Queue a suspending run's turns on the suspend pipeline; returns those left to
        :meth:`write` once it ran."""
        return turns

    async def read(self, ctx: AgentContext, command: AskAgentCommand) -> None:
        """Hand a root task its session's history (before its handler runs)."""
        turns = await self.bounded(
            "read", ctx.session_id, self.store.list(ctx.session_id, self.config.history_limit)
        )
        if turns is not None:
            command.extra_payload["history"] = [msgspec.to_builtins(t) for t in turns]

    async def write(self, session_id: str, turns: list[HistoryEntry]) -> None:
        await self.bounded("write", session_id, self.store.append(session_id, turns))

    async def bounded(self, what: str, session_id: str, call: Awaitable[_T]) -> _T | None:
        """Await a call of a history store other than Redis for at most
        ``history_timeout_seconds``; None when it failed or timed out (never raises: the
        task goes on). A timeout is logged at WARNING once, until a call succeeds again."""
        timeout = self.config.history_timeout_seconds
        try:
            result = await asyncio.wait_for(call, timeout)
        except TimeoutError:
            level = logging.DEBUG if self._slow else logging.WARNING
            self._slow = True
            log.log(
                level,
                "history %s of %s took more than %.1fs; the task goes on without it "
                "(further timeouts at DEBUG until the store answers in time)",
                what,
                session_id,
                timeout,
            )
            return None
        except Exception as exc:
            log.warning("history %s of %s failed: %s", what, session_id, exc)
            return None
        self._slow = False
        return result

    # -- the turns ---------------------------------------------------------------------------

    def turns(
        self, ctx: AgentContext, result: AgentTaskResult | None, question: str = ""
    ) -> list[HistoryEntry]:
        """The turns one run of a root task adds to its session's history: what the user
        said that started this run (the message, or an answer to the task's question) and
        what the agent said back (its answer, or its question). Each is written once: a
        run that suspends writes its part, the run that ends writes the rest. A run after
        the user's n-th answer marks its turns ``metadata={"run": n}``, so a store can tell
        a turn written again (a task ended twice) from a new one."""
        command, now = ctx.command, now_ms()
        run = ctx.record.user_answers
        metadata: dict[str, Any] = {"run": run} if run else {}
        turns = []
        if isinstance(command, AskAgentCommand) or ctx.record.resumed_by_user:
            turns.append(
                HistoryEntry(
                    role="user",
                    content=self._kept(getattr(command, "content", "")),
                    message_id=ctx.message_id,
                    agent_type=ctx.current_agent_id,
                    timestamp=now,
                    metadata=metadata,
                )
            )
        if result is not None:
            turns.append(
                HistoryEntry(
                    role="assistant",
                    content=self._kept(result.content),
                    message_id=ctx.message_id,
                    agent_type=ctx.current_agent_id,
                    status=str(result.status).upper(),
                    timestamp=now,
                    metadata=metadata,
                )
            )
        elif question:
            turns.append(
                HistoryEntry(
                    role="assistant",
                    content=self._kept(question),
                    message_id=ctx.message_id,
                    agent_type=ctx.current_agent_id,
                    status=AgentState.WAITING_USER,
                    timestamp=now,
                    metadata=metadata,
                )
            )
        return turns

    def _kept(self, content: Any) -> Any:
        """``content`` as a history turn keeps it: cut to ``max_history_bytes``."""
        limit = self.config.limits.max_history_bytes
        if isinstance(content, str):
            if len(content) * 4 <= limit:  # UTF-8 is at most 4 bytes a character
                return content
            data = content.encode("utf-8", "replace")
            if len(data) <= limit:
                return content
            cut = data[:limit].decode("utf-8", "ignore")
            return f"{cut}... [{len(data) - len(cut.encode()):,} more bytes not kept]"
        size = len(_json.encode(content))
        if size <= limit:
            return content
        return f"[{size:,} bytes of structured content not kept (max_history_bytes={limit:,})]"

    # -- the execution log -------------------------------------------------------------------

    async def log_execution(self, ctx: AgentContext) -> None:
        """Hand the execution's record as Redis has it now (its whole timeline) to the
        execution log: one read, made only for a store that keeps one."""
        try:
            record = await self.registry.get_execution(ctx.session_id, ctx.execution_id)
        except (RedisError, msgspec.DecodeError, ValueError) as exc:
            log.warning("execution %s not logged: %s", ctx.execution_id, exc)
            return
        if record is not None:
            await self.log_records([record])

    async def log_records(self, records: list[ExecutionRecord]) -> None:
        assert self.execution_log is not None
        try:
            await self.execution_log.record_executions(records)
        except Exception as exc:  # the log's problem must never become the task's
            log.warning("execution log refused %d record(s): %s", len(records), exc)


class ScriptHistory(HistorySink):
    """The Redis store, read and written inside the scripts that start and end a task."""

    store: RedisHistoryStore
    writes_outside = False

    def __init__(
        self, store: RedisHistoryStore, config: RunnerConfig, registry: WorkerRegistry
    ) -> None:
        super().__init__(store, config, registry)
        # the session's history comes with the start (no extra command)
        self.start_limit = config.history_limit

    def from_start(self, command: AskAgentCommand, raw: Any) -> None:
        try:
            command.extra_payload["history"] = RedisHistoryStore.decode_builtins(
                raw, self.start_limit
            )
        except (msgspec.DecodeError, TypeError) as exc:
            log.warning("history of %s unreadable (%s)", command.header.session_id, exc)

    def finish_args(self, ctx: AgentContext, final: AgentTaskResult) -> HistoryTurns:
        """FINISH's history arguments: a root task's turns go into the Redis store there.

        Beside the group of turns, FINISH gets where its last (the assistant's) turn
        starts and that turn as a cancelled run writes it: if the task's cancel was
        requested meanwhile, the script swaps it in (the answer is discarded)."""
        if not ctx.is_root:
            return HistoryTurns()
        store = self.store
        *said, answer = self.turns(ctx, final)  # the last one: the assistant's
        cancelled = msgspec.structs.replace(answer, content="", status=AgentState.CANCELLED)
        head = store.encode_group(said)[:-1] + (b"," if said else b"")
        group = head + _json.encode(answer) + b"]"
        return HistoryTurns(
            keep=store.max_entries,
            ttl_s=store.ttl_seconds,
            group=group,
            head_bytes=len(head),
            cancelled_turn=_json.encode(cancelled),
        )

    def queue_suspend(self, pipe: Any, session_id: str, turns: list[HistoryEntry]) -> list[Any]:
        self.store.queue_append(pipe, session_id, turns)
        return []


class StoreHistory(HistorySink):
    """A store other than Redis (a plugin's): its own calls, each bounded in time."""

    writes_outside = True

    def __init__(self, store: HistoryStore, config: RunnerConfig, registry: WorkerRegistry) -> None:
        super().__init__(store, config, registry)
        self.reads_before_run = config.history_limit > 0


def history_sink(
    store: HistoryStore, config: RunnerConfig, registry: WorkerRegistry
) -> HistorySink:
    """The sink for ``store``: in the scripts for the Redis store, else the store's own."""
    if isinstance(store, RedisHistoryStore):
        return ScriptHistory(store, config, registry)
    return StoreHistory(store, config, registry)
