"""Agents calling agents: sending tasks, task groups, replies to callers, cancel trees,
handing a session to its next message, and deadlines.

Everything here is shared by the client (sends, cancels), the agent context (calls and
groups) and the runner (replies, hand-overs, the deadline sweeper), so that each rule is
written once. Every state change is one Lua script on the session's (or group's) slot;
what crosses slots (a reply to another agent type's stream) is a separate command in the
same pipeline or the next one. Under schema v2 (Redis Cluster) the scripts run in outbox
mode and :meth:`Flow.forward` sends on what they return. So do they when commands are
signed (:mod:`byway.signing`): a command a script would write cannot be signed in Lua, so
Python signs it on the way out, as it does every command it writes itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis

from byway._log import get_logger
from byway.keys import Keys
from byway.protocol import (
    AgentState,
    AskAgentCommand,
    CancelMode,
    CancelTaskCommand,
    Command,
    MessageHeader,
    ResumeCommand,
    decode_command,
    encode_command,
    new_id,
    now_ms,
)
from byway.registry import new_record
from byway.signing import Signer
from byway.store.script import execute, handed_on
from byway.store.send import SendArgs, SendMode, queue_send, send
from byway.store.session import CancelledItem, CancelTreeArgs, cancel_tree
from byway.store.waits import GroupResultArgs, GroupResultReply, queue_group_result

__all__ = ["CancelOutcome", "Flow", "SendOutcome"]

log = get_logger("byway.flow")
_json = msgspec.json.Encoder()

#: Resume status a waiting execution receives when its deadline passes.
TIMEOUT_STATUS = "TIMEOUT"
#: Header metadata key that ties a timeout resume to the wait it ends.
WAIT_ID_KEY = "byway_wait_id"
#: Header metadata key carrying the call depth of a task (root = 0).
DEPTH_KEY = "byway_depth"
#: Header metadata keys that belong to one hop and must not travel with a reply.
_HOP_KEYS = (WAIT_ID_KEY, DEPTH_KEY)


#: the largest call depth a header may claim (past any max_call_depth)
_DEPTH_CAP = 1_000_000


def header_depth(metadata: dict[str, Any]) -> int:
    """The call depth a command's header carries (0 when absent or not a number)."""
    value = metadata.get(DEPTH_KEY, 0)
    if isinstance(value, str) and len(value) > 6:
        return _DEPTH_CAP  # int() of a long digit string is slow, and the value absurd
    try:
        return min(max(0, int(value)), _DEPTH_CAP)  # a wire value, bounded (Lua, JSON)
    except (TypeError, ValueError, OverflowError):
        return 0


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What the SEND script did with a message."""

    accepted: bool
    entry_id: str = ""
    execution_id: str = ""
    disposition: str = ""  # sent | queued | interrupt | duplicate
    holder: str = ""  # message id of the session's running root, if any
    error_code: str = ""


@dataclass(slots=True)
class CancelOutcome:
    """What a cancel reached: every execution that had not ended, in BFS order.

    ``via_worker``: the cancel went to a worker of the task's agent type (a client
    without scripts), which cancels the tree; ``items`` then lists only the targets."""

    items: list[dict[str, Any]] = field(default_factory=list)
    via_worker: bool = False

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def message_ids(self) -> list[str]:
        return [i["message_id"] for i in self.items]


class Flow:
    """Orchestration writes over one Redis client and key schema."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        record_ttl_s: int,
        stream_maxlen: int = 0,
        session_stream_maxlen: int = 10_000,
        lock_grace_ms: int = 600_000,
        max_command_bytes: int | None = None,
        signer: Signer | None = None,
    ) -> None:
        self.redis = redis
        #: commands larger than this are refused before they are sent (LimitExceededError)
        self.max_command_bytes = max_command_bytes
        self.keys = keys
        self.record_ttl_s = record_ttl_s
        self.stream_maxlen = stream_maxlen
        self.session_stream_maxlen = session_stream_maxlen
        self.lock_grace_ms = lock_grace_ms
        #: signs every command written to a control stream (None: commands go unsigned)
        self.signer = signer
        #: schema v2, or signed commands: scripts write their own slot only and return what
        #: goes elsewhere (commands among it), which Python sends
        self.outbox = keys.schema == "v2" or signer is not None
        #: schema v2: the keys of one script call must share a slot
        self._one_slot = keys.schema == "v2"
        #: SEND under schema v1 with signed commands: the script XADDs the command (signed
        #: here) when it goes out at once, and leaves only hand-ons to Python
        self._send_mode = SendMode.OUTBOX if self._one_slot else SendMode.DIRECT
        if signer is not None and not self._one_slot:
            self._send_mode = SendMode.SIGNED

    def seal(self, stream: str, data: bytes) -> bytes:
        """``data`` (a command) signed for ``stream`` when commands are signed, else as is."""
        return data if self.signer is None else self.signer.sign(data, stream)

    # -- outbox (schema v2) ----------------------------------------------------------------

    #: (stream, command) of a queue item a script handed on, or None for ''
    handed_item = staticmethod(handed_on)

    async def forward(
        self,
        sends: list[tuple[str, bytes]],
        queued_sessions: list[str] | None = None,
        resumed_groups: list[str] | None = None,
    ) -> list[Any]:
        """Send what outbox-mode scripts returned: commands to their streams, and the
        sessions that now have queued messages to the set the orphan sweep reads; then
        mark the task groups whose Resume went out."""
        if not sends and not queued_sessions:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, data in sends:
                pipe.xadd(stream, {"data": self.seal(stream, data)})
            if queued_sessions:
                pipe.sadd(self.keys.queued_sessions(), *queued_sessions)
            result: list[Any] = await pipe.execute()
        if resumed_groups:
            async with self.redis.pipeline(transaction=False) as pipe:
                for group_id in resumed_groups:
                    pipe.hset(self.keys.task_group(group_id), "resumed", "1")
                await pipe.execute()
        return result

    # -- sending ---------------------------------------------------------------------------

    def encode(self, command: Command) -> bytes:
        """``command``'s JSON, checked as a worker will check it (size, depth, ids), so
        that nothing is sent that its worker would only dead-letter: :class:`ProtocolError`
        or :class:`LimitExceededError` naming the field, before anything is written."""
        data = encode_command(command, max_bytes=self.max_command_bytes)
        decode_command(data, max_bytes=len(data), forbid_braces=self.keys.schema == "v2")
        return data

    def _send_call(
        self,
        command: AskAgentCommand,
        *,
        stream: str,
        root: bool,
        strategy: str = "",
        online_prefix: str = "",
        target_worker: str = "",
    ) -> SendArgs:
        h = command.header
        execution_id = new_id("exec")
        record = new_record(
            execution_id=execution_id,
            message_id=h.message_id,
            session_id=h.session_id,
            trace_id=h.trace_id,
            status=AgentState.QUEUED,
            target_agent_type=h.target_agent_type,
            source_agent_type=h.source_agent_type,
            parent_message_id=h.parent_message_id,
            task_group_id=h.task_group_id,
            user_code=h.user_code,
            depth=header_depth(h.metadata),
        )
        data = self.encode(command)
        return SendArgs(
            keyspace=self.keys,
            session_id=h.session_id,
            target_agent_type=h.target_agent_type,
            stream=stream,
            command=self.seal(stream, data) if self._send_mode == SendMode.SIGNED else data,
            execution_id=execution_id,
            message_id=h.message_id,
            record=record,
            record_ttl_s=self.record_ttl_s,
            stream_maxlen=self.stream_maxlen,
            online_prefix=online_prefix,
            target_worker=target_worker,
            root=root,
            strategy=strategy,
            lock_grace_ms=self.lock_grace_ms,
            mode=self._send_mode,
        )

    async def send(
        self,
        command: AskAgentCommand,
        *,
        stream: str,
        root: bool,
        strategy: str = "",
        check_online: bool = False,
        target_worker: str = "",
    ) -> SendOutcome:
        """Queue ``command`` (record + XADD, or the session's queue) in one script call
        (schema v2: the script, then the XADD)."""
        prefix = self.keys.worker_online("") if check_online else ""
        if self._one_slot and root and not strategy:
            raw_strategy: Any = await self.redis.get(
                self.keys.agent_type_strategy(command.header.target_agent_type)
            )
            strategy = raw_strategy.decode() if raw_strategy else "enqueue"
        call = self._send_call(
            command,
            stream=stream,
            root=root,
            strategy=strategy,
            online_prefix=prefix,
            target_worker=target_worker,
        )
        reply = await send(self.redis, call)
        if not reply.accepted:
            return SendOutcome(accepted=False, error_code=reply.error_code, holder=reply.holder)
        disposition, entry_id = reply.disposition, reply.entry_id
        if self.outbox:
            direct = disposition == "sent" and self._send_mode == SendMode.OUTBOX  # else SEND did
            sends = [(stream, call.command)] if direct else []
            handed = self.handed_item(reply.handed)
            if handed:
                sends.append(handed)
            queued = [command.header.session_id] if disposition in ("queued", "interrupt") else []
            written = await self.forward(sends, queued)
            if direct:
                entry_id = written[0].decode()
        return SendOutcome(
            accepted=True,
            entry_id=entry_id,
            execution_id=reply.execution_id,
            disposition=disposition,
            holder=reply.holder,
        )

    def queue_child(self, pipe: Any, command: AskAgentCommand) -> None:
        """Queue a called agent's task (record + XADD) in ``pipe``."""
        stream = self.keys.agent_stream(command.header.target_agent_type)
        call = self._send_call(command, stream=stream, root=False)
        queue_send(pipe, call)
        if self._send_mode == SendMode.OUTBOX:
            # a child is never queued behind its session, so it can go in the same round
            # trip; whichever lands first, START and SEND agree on one record
            pipe.xadd(stream, {"data": self.seal(stream, call.command)})

    def queue_group(
        self,
        pipe: Any,
        group_id: str,
        *,
        order: list[str],
        caller_agent_type: str,
        caller_message_id: str,
        session_id: str,
        trace_id: str,
    ) -> None:
        key = self.keys.task_group(group_id)
        pipe.hset(
            key,
            mapping={
                "total": len(order),
                "completed": 0,
                "source_agent_type": caller_agent_type,
                "parent_message_id": caller_message_id,
                "caller_stream": self.keys.agent_stream(caller_agent_type)
                if caller_agent_type
                else "",
                "session_id": session_id,
                "trace_id": trace_id,
                "order": _json.encode(order),
            },
        )
        pipe.expire(key, self.record_ttl_s)

    def queue_deadline(self, pipe: Any, deadline_ms: int, wait: dict[str, Any]) -> None:
        pipe.zadd(self.keys.deadlines(), {_json.encode(wait): deadline_ms})

    # -- replies ---------------------------------------------------------------------------

    @staticmethod
    def reply_command(
        *,
        caller_agent_type: str,
        caller_message_id: str,
        callee_agent_type: str,
        callee_message_id: str,
        session_id: str,
        trace_id: str,
        status: str,
        content: Any = "",
        reply_data: Any = None,
        metadata: dict[str, Any] | None = None,
        extra_payload: dict[str, Any] | None = None,
        task_group_id: str = "",
        user_code: str = "",
    ) -> bytes:
        """The Resume a callee sends its caller: ``message_id`` is the caller's,
        ``parent_message_id`` the callee's (SPEC §5)."""
        return encode_command(
            ResumeCommand(
                header=MessageHeader(
                    message_id=caller_message_id,
                    session_id=session_id,
                    trace_id=trace_id,
                    source_agent_type=callee_agent_type,
                    target_agent_type=caller_agent_type,
                    parent_message_id=callee_message_id,
                    task_group_id=task_group_id,
                    user_code=user_code,
                    metadata={k: v for k, v in (metadata or {}).items() if k not in _HOP_KEYS},
                ),
                content=content,
                status=status,
                reply_data=reply_data,
                extra_payload=dict(extra_payload or {}),
            )
        )

    def queue_reply(self, pipe: Any, caller_agent_type: str, command: bytes) -> None:
        stream = self.keys.agent_stream(caller_agent_type)
        pipe.xadd(stream, {"data": self.seal(stream, command)})

    def queue_group_result(
        self, pipe: Any, group_id: str, child_message_id: str, result: dict[str, Any]
    ) -> None:
        queue_group_result(
            pipe,
            GroupResultArgs(
                keyspace=self.keys,
                group_id=group_id,
                child_message_id=child_message_id,
                result=_json.encode(result),
                ttl_s=self.record_ttl_s,
                outbox=self.outbox,
            ),
        )

    @staticmethod
    def group_resume(result: Any) -> tuple[str, bytes] | None:
        """(stream, resume) that a GROUP_RESULT call left to its caller (outbox mode)."""
        return GroupResultReply.decode(result).forward

    async def group_results(self, group_id: str) -> tuple[list[str], dict[str, Any]]:
        """The group's children in task order and the results reported so far."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.keys.task_group(group_id), "order")
            pipe.hgetall(self.keys.task_group_results(group_id))
            order_raw, results_raw = await pipe.execute()
        order = msgspec.json.decode(order_raw) if order_raw else []
        results = {k.decode(): msgspec.json.decode(v) for k, v in results_raw.items()}
        return order, results

    # -- cancelling ------------------------------------------------------------------------

    async def cancel_tree(
        self,
        session_id: str,
        message_id: str,
        *,
        reason: str,
        mode: CancelMode = CancelMode.GRACEFUL,
        requested_by: str = "client",
        notify_caller: bool = True,
    ) -> CancelOutcome:
        """Cancel ``message_id`` and every descendant ('' = every root of the session).

        Queued and waiting executions end here; running ones get a CancelTask on their
        worker's stream. The caller of the cancelled task, if it is not being cancelled
        too, is resumed with CANCELLED (unless ``notify_caller`` is False).
        """
        k = self.keys
        reply = await cancel_tree(
            self.redis,
            CancelTreeArgs(
                keyspace=k,
                session_id=session_id,
                message_id=message_id,
                reason=reason,
                now_ms=now_ms(),
                requested_by=requested_by,
                stream_maxlen=self.session_stream_maxlen,
                ttl_s=self.record_ttl_s,
                lock_grace_ms=self.lock_grace_ms,
                outbox=self.outbox,
            ),
        )
        items = reply.items
        outcome = CancelOutcome(items=cast("list[dict[str, Any]]", items))
        cancelled = set(outcome.message_ids)
        handed = self.handed_item(reply.handed)
        async with self.redis.pipeline(transaction=False) as pipe:
            if handed:
                pipe.xadd(handed[0], {"data": self.seal(*handed)})
            for item in items:
                if not item["ended"] and item["worker_id"]:
                    cancel = CancelTaskCommand(
                        header=MessageHeader(
                            message_id=new_id("msg-cancel"),
                            session_id=session_id,
                            trace_id=new_id("trace"),
                            target_agent_type=item["target_agent_type"],
                            parent_message_id=item["message_id"],
                        ),
                        target_message_id=item["message_id"],
                        target_execution_id=item["execution_id"],
                        target_worker_id=item["worker_id"],
                        reason=reason,
                        requested_by=requested_by,
                        cancel_mode=mode,
                    )
                    stream = k.worker_stream(item["worker_id"])
                    pipe.xadd(stream, {"data": self.seal(stream, encode_command(cancel))})
            top = items[0] if items else None
            if notify_caller and top is not None and top["ended"]:
                self._queue_cancelled_reply(pipe, session_id, top, cancelled, reason)
            results = await execute(self.redis, pipe, raise_on_error=True)
        if self.outbox and top is not None and top["task_group_id"]:
            resumes = [r for r in map(self.group_resume, results) if r]
            await self.forward(resumes, resumed_groups=[top["task_group_id"]] if resumes else None)
        return outcome

    def _queue_cancelled_reply(
        self, pipe: Any, session_id: str, item: CancelledItem, cancelled: set[str], reason: str
    ) -> None:
        """Tell a cancelled callee's group, or its waiting caller if not cancelled too."""
        if item["task_group_id"]:
            self.queue_group_result(
                pipe,
                item["task_group_id"],
                item["message_id"],
                {
                    "message_id": item["message_id"],
                    "target_agent_type": item["target_agent_type"],
                    "status": AgentState.CANCELLED,
                    "content": "",
                    "reply_data": None,
                    "error": {"type": "Cancelled", "message": reason},
                },
            )
            return
        caller = item["source_agent_type"]
        parent = item["parent_message_id"]
        if caller in ("", "client") or not parent or parent in cancelled:
            return
        self.queue_reply(
            pipe,
            caller,
            self.reply_command(
                caller_agent_type=caller,
                caller_message_id=parent,
                callee_agent_type=item["target_agent_type"],
                callee_message_id=item["message_id"],
                session_id=session_id,
                trace_id=item["trace_id"] or new_id("trace"),
                status=AgentState.CANCELLED,
                reply_data={"reason": reason},
            ),
        )
