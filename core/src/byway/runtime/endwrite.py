"""One task's end as it is queued on the end pipeline (:mod:`byway.runtime.ends`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from byway.protocol import AgentState
from byway.store.finish import FinishArgs, FinishReply, queue_finish

if TYPE_CHECKING:
    from byway.context import AgentContext
    from byway.flow import Flow

__all__ = ["EndWrite"]


@dataclass(slots=True)
class EndWrite:
    """What ends one task: FINISH, the reply or group result for its caller, the XACK."""

    finish: FinishArgs
    ack: tuple[str, str]
    context: AgentContext
    done: asyncio.Future[None]
    reply: bytes | None = None
    group_result: dict[str, Any] | None = None
    #: where its FINISH and GROUP_RESULT calls sit in the pipeline (for outbox mode)
    positions: tuple[int, int] = (-1, -1)
    #: the state it ends in: as the handler's result says, until FINISH says otherwise
    status: str = AgentState.COMPLETED

    def written(self, results: list[Any]) -> None:
        """Take the state FINISH wrote (a root cancelled meanwhile ends CANCELLED)."""
        finished = FinishReply.decode(results[self.positions[0]])
        if finished.ended:
            self.status = finished.status or self.status

    def queue(self, pipe: Any, flow: Flow, group: str, *, ack: bool, reply: bool = True) -> None:
        """Queue FINISH, the caller's group result or (``reply``) reply, and (``ack``) the
        XACK. Outbox mode sends the reply once FINISH has run (:mod:`byway.runtime.outbox`):
        on a cluster the reply's stream is on another node than the session, and a caller
        that read the reply before the callee's end was written would refuse it."""
        finish_at, group_at = len(pipe), -1
        queue_finish(pipe, self.finish)
        ctx = self.context
        if self.group_result is not None:
            group_at = len(pipe)
            flow.queue_group_result(pipe, ctx.task_group_id, ctx.message_id, self.group_result)
        elif self.reply is not None and reply:
            flow.queue_reply(pipe, ctx.reply_to, self.reply)
        if ack:
            pipe.xack(self.ack[0], group, self.ack[1])
        self.positions = (finish_at, group_at)
