"""Outbox mode as one strategy, chosen once from ``flow.outbox``.

Standalone Redis (:class:`DirectSends`): the scripts send what follows a start or an end
themselves (the session's next message, a group's Resume). A Redis Cluster, or signed
commands (:class:`OutboxSends`): a script cannot write keys of other slots, or cannot
sign, so it leaves those sends to the worker, which forwards them after the script ran
and acknowledges a group child only once its group's Resume went out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from byway.flow import Flow
from byway.protocol import AskAgentCommand
from byway.store.finish import FinishReply
from byway.store.script import execute
from byway.store.start import StartReply

if TYPE_CHECKING:
    from byway.runtime.endwrite import EndWrite

__all__ = ["DirectSends", "OutboxSends", "outbox_mode"]


class DirectSends:
    """The scripts send; nothing is left to forward."""

    #: the scripts' outbox flag (ARGV), and whether ends leave anything to forward
    enabled = False
    forwards = False

    def __init__(self, redis: Any, flow: Flow, group: str) -> None:
        self.redis = redis
        self.flow = flow
        self.group = group

    def acks_late(self, write: EndWrite) -> bool:
        """Whether the end's XACK waits for its forwards (never, here)."""
        return False

    async def after_start(self, command: Any, reply: StartReply) -> None:
        """What a start that did not run left to send (nothing, here)."""

    async def forward_ends(self, batch: list[EndWrite], results: list[Any]) -> None:
        """What the end scripts left to send (nothing, here)."""


class OutboxSends(DirectSends):
    """The scripts leave their sends to the worker."""

    enabled = True
    forwards = True

    def acks_late(self, write: EndWrite) -> bool:
        """Outbox mode: a group child is acknowledged only once its group's Resume is sent
        (if its worker dies before, the entry comes back and sends it; see the starter)."""
        return write.group_result is not None

    async def after_start(self, command: Any, reply: StartReply) -> None:
        """What the script left for us: a hand-on, a queued session (done, stale or
        deferred starts); a group child that had ended reports again."""
        verdict = reply.verdict
        handed = Flow.handed_item(reply.handed) if verdict == "done" else None
        sends = [handed] if handed else []
        group_id = command.header.task_group_id
        again = None
        if verdict == "done" and group_id and isinstance(command, AskAgentCommand):
            again = await self.group_report_again(command, reply.status)
        await self.flow.forward(
            sends + ([again] if again else []),
            [command.header.session_id] if verdict == "deferred" else None,
            [group_id] if again else None,
        )

    @staticmethod
    def forwards_of(write: EndWrite, results: list[Any]) -> list[tuple[str, bytes]]:
        """What one end left to forward: the session's next message, the group's Resume
        or the reply to its caller (sent once FINISH ran: see :class:`EndWrite`)."""
        out: list[tuple[str, bytes]] = []
        finish_at, group_at = write.positions
        ctx = write.context
        if write.group_result is None and write.reply is not None:
            out.append((ctx.keys.agent_stream(ctx.reply_to), write.reply))
        handed = Flow.handed_item(FinishReply.decode(results[finish_at]).handed)
        if handed:
            out.append(handed)
        if group_at >= 0:
            resume = Flow.group_resume(results[group_at])
            if resume:
                out.append(resume)
        return out

    async def forward_ends(self, batch: list[EndWrite], results: list[Any]) -> None:
        """Send what the end scripts left (next messages, group Resumes), then
        acknowledge the group children that waited for it."""
        sends: list[tuple[str, bytes]] = []
        resumed: list[str] = []
        for write in batch:
            forwards = self.forwards_of(write, results)
            sends += forwards
            if write.positions[1] >= 0 and Flow.group_resume(results[write.positions[1]]):
                resumed.append(write.context.task_group_id)
        await self.flow.forward(sends, resumed_groups=resumed)
        late = [w.ack for w in batch if self.acks_late(w)]
        if late:
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream, entry_id in late:
                    pipe.xack(stream, self.group, entry_id)
                await pipe.execute()

    async def group_report_again(
        self, command: AskAgentCommand, status: str
    ) -> tuple[str, bytes] | None:
        """A group child that had ended comes back (its worker died before its group's
        Resume went out): report it again; the last report sends the Resume. The result
        it reported first is kept; this one only stands in if that was lost."""
        h = command.header
        result = {"message_id": h.message_id, "target_agent_type": h.target_agent_type}
        async with self.redis.pipeline(transaction=False) as pipe:
            self.flow.queue_group_result(
                pipe, h.task_group_id, h.message_id, {**result, "status": status}
            )
            results = await execute(self.redis, pipe)
        return Flow.group_resume(results[0])


def outbox_mode(redis: Any, flow: Flow, group: str) -> DirectSends:
    """The strategy ``flow`` needs: outbox sends in cluster or signing mode."""
    return (OutboxSends if flow.outbox else DirectSends)(redis, flow, group)
