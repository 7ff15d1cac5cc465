"""Cancelling a task and its tree, or a whole session."""

from __future__ import annotations

from typing import Any

from redis.exceptions import NoPermissionError

from byway._client.base import ClientBase
from byway._client.types import CancelTaskResponse, checked_id, checked_mode
from byway._scriptless import cancel_requests
from byway.errors import ConfigurationError
from byway.flow import CancelOutcome
from byway.protocol import CancelMode, now_ms
from byway.registry import ExecutionRecord

__all__ = ["Cancels"]


class Cancels(ClientBase):
    """``cancel_task`` and ``cancel_session``: the CANCEL_TREE script, or without scripts a
    CANCEL_TASK a worker carries out."""

    async def cancel_task(
        self,
        message_id: str,
        session_id: str,
        reason: str | None = None,
        cancel_mode: CancelMode | str = CancelMode.GRACEFUL,
        *,
        requested_by: str = "client",
        target_agent_type: str = "",
    ) -> CancelTaskResponse:
        """Cancel ``message_id`` and, breadth-first, every task it started.

        Queued tasks never start; waiting ones end now; running ones stop (graceful: the
        handler's ``check_cancelled`` raises, and after the worker's grace period the
        handler is cancelled; force: at once). A caller waiting on the cancelled task is
        resumed with CANCELLED. Returns what was reached (ended tasks are not listed),
        with by-framework's response fields (``success``, ``status``...). Without scripts
        the cancel goes to a worker of the task's agent type, which does the same; the
        outcome then lists the task only (``via_worker``). An unknown message raises
        :class:`ConfigurationError` (by-framework answers ``NOT_FOUND``).
        ``target_agent_type`` is by-framework's and unused there as here.
        """
        del target_agent_type
        checked_id("message_id", message_id)
        checked_id("session_id", session_id)
        mode = checked_mode(cancel_mode)
        record = await self.registry.get_execution_by_message(session_id, message_id)
        if record is None:
            raise ConfigurationError(
                f"message_id: no execution of {message_id!r} in session {session_id!r}"
                + ("" if self.uses_scripts else " (yet: no worker has read it)")
            )
        outcome: CancelOutcome | None = None
        if self.uses_scripts:
            try:
                outcome = await self.flow.cancel_tree(
                    session_id,
                    message_id,
                    reason=reason or "cancelled",
                    mode=mode,
                    requested_by=requested_by,
                )
            except NoPermissionError as exc:  # refused before it ran
                self._refuse_scripts(exc)
        if outcome is None:
            outcome = await self._cancel_via_worker([record], reason or "cancelled", mode)
        reached = outcome.count
        return CancelTaskResponse(
            items=outcome.items,
            via_worker=outcome.via_worker,
            success=reached > 0,
            message_id=message_id,
            execution_id=record.execution_id,
            worker_id=record.worker_id,
            status="CANCEL_REQUESTED" if reached else "ALREADY_FINISHED",
            timestamp=now_ms(),
            error="" if reached else f"execution already in terminal state: {record.status}",
            cancelled_count=reached,
        )

    async def cancel_session(
        self, session_id: str, reason: str | None = None, cancel_mode: CancelMode | str = "graceful"
    ) -> CancelOutcome:
        """Cancel every task of the session, and the messages queued behind them."""
        checked_id("session_id", session_id)
        mode = checked_mode(cancel_mode)
        if self.uses_scripts:
            try:
                return await self.flow.cancel_tree(
                    session_id, "", reason=reason or "session cancelled", mode=mode
                )
            except NoPermissionError as exc:
                self._refuse_scripts(exc)
        roots = [
            r
            for r in await self.registry.list_executions(session_id)
            if r.source_agent_type in ("", "client") and not r.parent_message_id
        ]
        return await self._cancel_via_worker(roots, reason or "session cancelled", mode)

    async def _cancel_via_worker(
        self, records: list[ExecutionRecord], reason: str, mode: CancelMode
    ) -> CancelOutcome:
        """Without scripts: a CANCEL_TASK for each execution that has not ended, on its
        agent type's stream, where a worker cancels its tree (flow.cancel_tree)."""
        items: list[dict[str, Any]] = []
        for command, item in cancel_requests(records, reason, mode):
            await self.send_command(command, require_online_worker=False)
            items.append(item)
        return CancelOutcome(items=items, via_worker=True)
