"""GatewayClient: send commands to agents and read sessions' event streams.

::

    async with GatewayClient.from_url("redis://localhost:6379") as client:
        sent = await client.send_message("research", "s-1", "Summarise the Q3 report")
        async for event in client.stream("s-1", until_message_id=sent.message_id):
            print(event.event_type, event.data)

``stream`` is resumable: every event carries the stream entry ``id`` it was read at, and
``stream(session_id, after=event.id)`` continues from there after a disconnect.

Without scripts (``scripts=False``, ``BYWAY_CLIENT_SCRIPTS=0``, or by itself once Redis
answers NOPERM to a script: the ACL client role of ``byway acl``) the client writes
nothing but control-stream entries: an ask is a plain XADD (the worker that reads it
creates its execution record and applies one writer per session), the online check
reads the registry, and a cancel is a CANCEL_TASK on the task's agent-type stream, whose
worker cancels the tree.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Protocol

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from byway import _scripts, tracing
from byway._log import get_logger
from byway._scriptless import cancel_requests, scripts_setting
from byway.answers import UNKNOWN, refusal_reason, resume_body
from byway.errors import (
    ConfigurationError,
    NoOnlineWorkerError,
    ProtocolError,
    ResumeRefusedError,
    SessionBusyError,
)
from byway.flow import STRATEGIES, CancelOutcome, Flow, SendOutcome
from byway.keys import Keys
from byway.limits import Limits
from byway.protocol import (
    AgentState,
    AskAgentCommand,
    CancelMode,
    Command,
    Content,
    Event,
    EventType,
    MessageHeader,
    ReloadPluginsCommand,
    ResumeCommand,
    check_id,
    decode_command,
    decode_event,
    encode_command,
    new_id,
    now_ms,
)
from byway.registry import ExecutionRecord, WorkerRegistry
from byway.settings import RedisSettings
from byway.signing import Signer

__all__ = ["ClientInterceptor", "GatewayClient", "ReloadAck", "SendMessageResponse"]

DEFAULT_STREAM_BLOCK_MS = 5_000
log = get_logger("byway.client")


class ClientInterceptor(Protocol):
    """Sees (and may replace) every command before it is written to Redis."""

    async def before_send(self, command: Command) -> Command: ...


class ReloadAck(msgspec.Struct, kw_only=True):
    """One worker's answer to :meth:`GatewayClient.reload_plugins`."""

    worker_id: str
    status: str  # "ok" | "error"
    version_before: str = ""
    version_after: str = ""
    error: str = ""
    timestamp: int = 0


@dataclass(frozen=True, slots=True)
class SendMessageResponse:
    """What ``send_message`` and ``send_command`` return.

    ``success`` is False when routing refused the message (``error_code`` says why:
    ``AGENT_TYPE_UNAVAILABLE`` or ``WORKER_NOT_ONLINE``); call :meth:`raise_for_status`
    to turn that into an exception.
    """

    success: bool
    message_id: str
    trace_id: str
    session_id: str
    target_worker_id: str
    timestamp: int
    status: str
    execution_id: str = ""
    stream_entry_id: str = ""
    error: str = ""
    error_code: str = ""
    #: sent | queued (waits for the session's running task) | interrupt
    disposition: str = ""
    #: queued or interrupt: the message id of the session's task this one waits behind
    queued_behind: str = ""

    def raise_for_status(self) -> SendMessageResponse:
        if not self.success:
            if self.error_code == "SESSION_BUSY":
                raise SessionBusyError(self.error)
            raise NoOnlineWorkerError(self.error)
        return self


def _check_id(field: str, value: object) -> str:
    """An id a client may send: 1-256 characters, no control characters, no braces (so the
    same ids work under both key schemas)."""
    try:
        return check_id(field, value, forbid_braces=True)
    except ProtocolError as exc:
        raise ConfigurationError(str(exc)) from None


def _cancel_mode(value: CancelMode | str) -> CancelMode:
    try:
        return CancelMode(value)
    except ValueError:
        raise ConfigurationError(
            f"cancel_mode: expected 'graceful' or 'force', got {value!r}"
        ) from None


def _check_content(content: object) -> Content:
    if isinstance(content, str) and content.strip():
        if _SURROGATE.search(content):
            raise ConfigurationError(
                "content: holds a lone surrogate (U+D800-U+DFFF), which UTF-8 cannot encode; "
                "decode the text with errors='replace' first"
            )
        return content
    if isinstance(content, list) and content and all(isinstance(i, dict) for i in content):
        return content
    raise ConfigurationError(
        "content: expected a non-empty string or a non-empty list of message objects, "
        f"got {content!r}"
    )


def _queued(
    header: MessageHeader,
    worker: str,
    now: int,
    entry_id: str,
    execution_id: str = "",
    disposition: str = "sent",
    queued_behind: str = "",
) -> SendMessageResponse:
    """The response to a command that was written (queued for a worker)."""
    return SendMessageResponse(
        success=True,
        message_id=header.message_id,
        trace_id=header.trace_id,
        session_id=header.session_id,
        target_worker_id=worker,
        timestamp=now,
        status=AgentState.QUEUED,
        execution_id=execution_id,
        stream_entry_id=entry_id,
        disposition=disposition,
        queued_behind=queued_behind,
    )


_SURROGATE = re.compile("[\ud800-\udfff]")


class GatewayClient:
    """Writes commands to agent-type (or worker) streams and reads session streams."""

    def __init__(
        self,
        redis: aioredis.Redis | None = None,
        *,
        settings: RedisSettings | None = None,
        stream_maxlen: int = 0,
        scripts: bool | None = None,
        limits: Limits | None = None,
        signer: Signer | None = None,
    ) -> None:
        """``scripts``: True runs Lua scripts only, False never (the ACL client role);
        None (default, or ``$BYWAY_CLIENT_SCRIPTS``) runs them until Redis refuses one
        (NOPERM), then goes on without. ``limits`` (default: :meth:`Limits.from_env`)
        bounds what it sends and reads. ``signer=None`` signs commands as
        ``BYWAY_SIGNING_KEYS`` says (unset: unsigned)."""
        self.settings = settings or RedisSettings.from_env()
        self._scripts = scripts_setting(scripts)
        self.limits = limits or Limits.from_env()
        self._owns_redis = redis is None
        self.redis = redis if redis is not None else self.settings.client()
        self.keys: Keys = self.settings.keys
        self.registry = WorkerRegistry(self.redis, self.keys)
        self.stream_maxlen = stream_maxlen
        self.flow = Flow(
            self.redis,
            self.keys,
            record_ttl_s=self.registry.record_ttl_s,
            stream_maxlen=stream_maxlen,
            max_command_bytes=self.limits.max_command_bytes,
            signer=signer if signer is not None else Signer.from_env(),
        )
        self._interceptors: list[ClientInterceptor | Callable[[Command], Awaitable[Command]]] = []

    @classmethod
    def from_url(cls, url: str | None = None, **settings: Any) -> GatewayClient:
        """A client for ``url`` (``None``: environment, else the embedded Redis)."""
        base = RedisSettings.from_env() if url is None else RedisSettings.from_url(url)
        return cls(settings=replace(base, **settings) if settings else base)

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_redis:
            await self.redis.aclose()

    def add_interceptor(
        self, interceptor: ClientInterceptor | Callable[[Command], Awaitable[Command]]
    ) -> None:
        """Run ``interceptor`` on every command before it is sent, in the order added."""
        self._interceptors.append(interceptor)

    @property
    def uses_scripts(self) -> bool:
        """Whether sends and cancels still go through Lua scripts."""
        return self._scripts is not False

    def _refuse_scripts(self, exc: NoPermissionError) -> None:
        """Redis refused a script (or a key it needs): go on without, unless told not to."""
        if self._scripts is True:
            raise exc
        self._scripts = False
        log.info(
            "Redis refused this client's scripts (%s): sending without scripts from now on "
            "(the ACL client role; see docs/operations.md, 'Redis ACLs')",
            exc,
        )

    async def _find_online(self, agent_type: str, worker: str) -> str | None:
        if self._scripts is not False:
            try:
                return await self.registry.find_online_worker(agent_type, worker)
            except NoPermissionError as exc:
                self._refuse_scripts(exc)
        return await self.registry.find_online_worker(agent_type, worker, script=False)

    async def _intercept(self, command: Command) -> Command:
        for interceptor in self._interceptors:
            before_send = getattr(interceptor, "before_send", None)
            command = await (before_send(command) if before_send else interceptor(command))  # type: ignore[operator]
        return command

    # -- sending ---------------------------------------------------------------------------

    async def send_message(
        self,
        target_agent_type: str,
        session_id: str,
        content: Content,
        *,
        user_code: str = "",
        user_name: str = "",
        metadata: dict[str, Any] | None = None,
        extra_payload: dict[str, Any] | None = None,
        target_worker_id: str | None = None,
        require_online_worker: bool = True,
        wait_for_reply: bool = False,
        message_id: str | None = None,
        trace_id: str | None = None,
        multitask_strategy: str | None = None,
    ) -> SendMessageResponse:
        """Queue an AskAgent for ``target_agent_type`` in ``session_id``.

        With ``target_worker_id`` the command goes to that worker's own stream instead of
        the agent type's queue. With ``require_online_worker`` (default) the message is
        refused unless a live worker can take it. While the session runs another root
        task, ``multitask_strategy`` (default: the agent type's, else ``enqueue``) decides:
        ``enqueue`` runs it afterwards, ``reject`` refuses it (``SESSION_BUSY``),
        ``interrupt`` cancels the running task and runs this one next.
        """
        if multitask_strategy is not None and multitask_strategy not in STRATEGIES:
            raise ConfigurationError(
                f"multitask_strategy: expected one of {', '.join(STRATEGIES)}, "
                f"got {multitask_strategy!r}"
            )
        _check_id("target_agent_type", target_agent_type)
        _check_id("session_id", session_id)
        if target_worker_id is not None:
            _check_id("target_worker_id", target_worker_id)
        if metadata is not None and not isinstance(metadata, dict):
            raise ConfigurationError(f"metadata: expected a dict, got {type(metadata).__name__}")
        if extra_payload is not None and not isinstance(extra_payload, dict):
            raise ConfigurationError(
                f"extra_payload: expected a dict, got {type(extra_payload).__name__}"
            )
        command = AskAgentCommand(
            header=MessageHeader(
                message_id=message_id or new_id("msg"),
                session_id=session_id,
                trace_id=trace_id or uuid.uuid4().hex,
                target_agent_type=target_agent_type,
                user_code=user_code,
                user_name=user_name,
                # the task's span joins the caller's trace when it runs inside a span
                metadata=tracing.inject(dict(metadata or {})),
            ),
            content=_check_content(content),
            wait_for_reply=wait_for_reply,
            extra_payload=dict(extra_payload or {}),
        )
        return await self.send_command(
            command,
            target_worker_id=target_worker_id,
            require_online_worker=require_online_worker,
            multitask_strategy=multitask_strategy or "",
        )

    async def send_command(
        self,
        command: Command,
        *,
        target_worker_id: str | None = None,
        require_online_worker: bool = True,
        multitask_strategy: str = "",
    ) -> SendMessageResponse:
        """Send any command: to ``target_worker_id``'s stream or its agent type's queue."""
        command = await self._intercept(command)
        header = command.header
        agent_type = header.target_agent_type
        if not agent_type and not target_worker_id:
            raise ConfigurationError(
                "header.target_agent_type: expected an agent type (or pass target_worker_id)"
            )
        worker = target_worker_id or ""
        is_ask = isinstance(command, AskAgentCommand)
        # under schema v1 the SEND script checks for a live worker itself: one round trip
        check_in_script = (
            require_online_worker and is_ask and self.keys.schema == "v1" and self.uses_scripts
        )
        if require_online_worker and not check_in_script:
            if await self._find_online(agent_type, worker) is None:
                return self._refused(command, worker, "")
        stream = (
            self.keys.worker_stream(target_worker_id)
            if target_worker_id
            else self.keys.agent_stream(agent_type)
        )
        now = now_ms()
        root = header.source_agent_type in ("", "client") and not header.parent_message_id
        if isinstance(command, AskAgentCommand) and self.uses_scripts:
            try:
                sent = await self.flow.send(
                    command,
                    stream=stream,
                    root=root,
                    strategy=multitask_strategy,
                    check_online=check_in_script,
                    target_worker=worker,
                )
            except NoPermissionError as exc:  # refused before it ran: nothing was written
                self._refuse_scripts(exc)
                if check_in_script and await self._find_online(agent_type, worker) is None:
                    return self._refused(command, worker, "")
            else:
                return await self._sent(command, worker, now, sent)
        if isinstance(command, AskAgentCommand) and root and multitask_strategy in STRATEGIES[1:]:
            raise ConfigurationError(
                f"multitask_strategy: {multitask_strategy!r} needs the client's scripts; "
                "without them (the ACL client role) a busy session queues the message"
            )
        # a plain XADD: any command that is not an ask, and every command without scripts
        data = self.flow.encode(command)
        entry: Any = await self.redis.xadd(
            stream,
            {"data": self.flow.seal(stream, data)},
            maxlen=self.stream_maxlen or None,
            approximate=True,
        )
        return _queued(header, worker, now, entry.decode())

    async def _sent(
        self, command: AskAgentCommand, worker: str, now: int, sent: SendOutcome
    ) -> SendMessageResponse:
        """The response to an ask the SEND script handled."""
        header = command.header
        if not sent.accepted:
            return self._refused(command, worker, sent.error_code, sent.holder)
        if sent.disposition == "interrupt":
            await self.flow.cancel_tree(
                header.session_id,
                sent.holder,
                reason=f"interrupted by {header.message_id}",
                requested_by="client",
            )
        behind = sent.holder if sent.disposition in ("queued", "interrupt") else ""
        return _queued(
            header, worker, now, sent.entry_id, sent.execution_id, sent.disposition, behind
        )

    def _refused(
        self, command: Command, worker: str, code: str, holder: str = ""
    ) -> SendMessageResponse:
        header = command.header
        if code == "SESSION_BUSY":
            error = (
                f"session_id: session {header.session_id!r} is running message {holder!r} and "
                "its multitask strategy is 'reject'; wait for it to end, cancel it, or send "
                "with multitask_strategy='enqueue' or 'interrupt'"
            )
        elif worker:
            code, error = "WORKER_NOT_ONLINE", f"target_worker_id: worker {worker!r} is not online"
        else:
            code = "AGENT_TYPE_UNAVAILABLE"
            error = (
                f"target_agent_type: no online worker serves {header.target_agent_type!r}; "
                f"start one with `byway worker ... --agent-type {header.target_agent_type}` "
                "or pass require_online_worker=False to queue anyway"
            )
        return SendMessageResponse(
            success=False,
            message_id=header.message_id,
            trace_id=header.trace_id,
            session_id=header.session_id,
            target_worker_id=worker,
            timestamp=now_ms(),
            status="FAILED",
            error=error,
            error_code=code,
        )

    async def resume(
        self,
        session_id: str,
        message_id: str,
        answer: Any,
        *,
        target_agent_type: str | None = None,
        status: str = AgentState.COMPLETED,
        reply_data: Any = None,
        extra_payload: dict[str, Any] | None = None,
        user_code: str = "",
    ) -> SendMessageResponse:
        """Answer the question (``ask_user``) the execution of ``message_id`` waits on.

        ``answer`` is any JSON value: text goes in the Resume's ``content`` (with
        ``reply_data`` if given); an object, list, number or boolean goes in
        ``reply_data`` (what the LangGraph and ADK adapters read first, e.g.
        ``{"decisions": [{"type": "approve"}]}``, or ``{interrupt_id: value, ...}`` to
        answer open interrupts or calls one by one), with its JSON text as ``content``.

        Raises :class:`ResumeRefusedError` unless the execution waits for the user's
        answer (``WAITING_USER``) and no other answer to this question went out before:
        an unknown message (or the wrong session), a task that finished, runs, or waits
        for another agent. Under key schema v1 with scripts the check and the write are
        one script; otherwise the check reads the record first, and an answer that still
        arrives too late is refused by the worker with an ``answer_refused`` event.
        """
        _check_id("session_id", session_id)
        _check_id("message_id", message_id)
        content, data = resume_body(answer, reply_data)
        record = await self.registry.get_execution_by_message(session_id, message_id)
        if record is None:
            raise ResumeRefusedError(
                refusal_reason(session_id, message_id, UNKNOWN), status=UNKNOWN
            )
        self._check_waiting(session_id, message_id, record.status)
        command = ResumeCommand(
            header=MessageHeader(
                message_id=message_id,
                session_id=session_id,
                trace_id=record.trace_id or uuid.uuid4().hex,
                target_agent_type=target_agent_type or record.target_agent_type,
                user_code=user_code,
            ),
            content=content,
            status=status,
            reply_data=data,
            extra_payload=dict(extra_payload or {}),
        )
        return await self._send_answer(await self._intercept(command))

    @staticmethod
    def _check_waiting(session_id: str, message_id: str, status: str) -> None:
        why = refusal_reason(session_id, message_id, status)
        if why:
            raise ResumeRefusedError(why, status=status)

    async def _send_answer(self, command: Command) -> SendMessageResponse:
        """Write an answer to its agent type's stream: with the RESUME script (schema v1),
        which checks again that the question is open in the same step, else as is."""
        header = command.header
        if not header.target_agent_type:
            raise ConfigurationError("target_agent_type: expected the agent type to answer")
        stream = self.keys.agent_stream(header.target_agent_type)
        data = self.flow.encode(command)
        now = now_ms()
        if self.keys.schema == "v1" and self.uses_scripts:
            try:
                reply: Any = await _scripts.RESUME.run(
                    self.redis,
                    [self.keys.session_registry(header.session_id), stream],
                    [header.message_id, self.flow.seal(stream, data), self.stream_maxlen],
                )
            except NoPermissionError as exc:  # refused before it ran: nothing was written
                self._refuse_scripts(exc)
            else:
                if reply[0] == 0:
                    self._check_waiting(header.session_id, header.message_id, reply[1].decode())
                return _queued(header, "", now, reply[1].decode())
        entry: Any = await self.redis.xadd(
            stream,
            {"data": self.flow.seal(stream, data)},
            maxlen=self.stream_maxlen or None,
            approximate=True,
        )
        return _queued(header, "", now, entry.decode())

    async def cancel_task(
        self,
        message_id: str,
        session_id: str,
        reason: str | None = None,
        cancel_mode: CancelMode | str = CancelMode.GRACEFUL,
    ) -> CancelOutcome:
        """Cancel ``message_id`` and, breadth-first, every task it started.

        Queued tasks never start; waiting ones end now; running ones stop (graceful: the
        handler's ``check_cancelled`` raises, and after the worker's grace period the
        handler is cancelled; force: at once). A caller waiting on the cancelled task is
        resumed with CANCELLED. Returns what was reached (ended tasks are not listed).
        Without scripts the cancel goes to a worker of the task's agent type, which does
        the same; the outcome then lists the task only (``via_worker``).
        """
        _check_id("message_id", message_id)
        _check_id("session_id", session_id)
        mode = _cancel_mode(cancel_mode)
        record = await self.registry.get_execution_by_message(session_id, message_id)
        if record is None:
            raise ConfigurationError(
                f"message_id: no execution of {message_id!r} in session {session_id!r}"
                + ("" if self.uses_scripts else " (yet: no worker has read it)")
            )
        if self.uses_scripts:
            try:
                return await self.flow.cancel_tree(
                    session_id, message_id, reason=reason or "cancelled", mode=mode
                )
            except NoPermissionError as exc:  # refused before it ran
                self._refuse_scripts(exc)
        return await self._cancel_via_worker([record], reason or "cancelled", mode)

    async def cancel_session(
        self, session_id: str, reason: str | None = None, cancel_mode: CancelMode | str = "graceful"
    ) -> CancelOutcome:
        """Cancel every task of the session, and the messages queued behind them."""
        _check_id("session_id", session_id)
        mode = _cancel_mode(cancel_mode)
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

    # -- plugins ---------------------------------------------------------------------------

    async def reload_plugins(self, reason: str = "", timeout: float = 10.0) -> list[ReloadAck]:
        """Ask every live worker to reload its plugins and agent configs; wait up to
        ``timeout`` seconds for their acknowledgements and return them (workers that did
        not answer in time are missing from the list)."""
        if timeout <= 0:
            raise ConfigurationError(f"timeout: expected a positive number, got {timeout}")
        workers = [w.worker_id for w in await self.registry.list_workers()]
        reload_id = new_id("reload")
        ack_stream = self.keys.plugin_reload_ack(reload_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in workers:
                command = ReloadPluginsCommand(
                    header=MessageHeader(
                        message_id=new_id("msg-reload"),
                        session_id=f"reload-{reload_id}",
                        trace_id=uuid.uuid4().hex,
                    ),
                    reload_id=reload_id,
                    reason=reason,
                )
                stream = self.keys.worker_stream(worker_id)
                pipe.xadd(stream, {"data": self.flow.seal(stream, encode_command(command))})
            await pipe.execute()
        acks: list[ReloadAck] = []
        last: bytes | str = "0"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(acks) < len(workers):
            left = deadline - loop.time()
            if left <= 0:
                break
            reply: Any = await self.redis.xread({ack_stream: last}, block=max(1, int(left * 1000)))
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    acks.append(msgspec.json.decode(fields[b"data"], type=ReloadAck))
        return acks

    # -- dead letters ----------------------------------------------------------------------

    async def dead_letters(self, count: int = 100) -> list[dict[str, Any]]:
        """The newest dead-lettered entries: ``id``, ``stream``, ``reason``, ``raw``..."""
        entries: Any = await self.redis.xrevrange(self.keys.dead_letters(), count=count)
        return [{"id": eid.decode(), **msgspec.json.decode(f[b"data"])} for eid, f in entries]

    async def replay_dead_letter(self, entry_id: str) -> SendMessageResponse:
        """Send a dead-lettered task again, as a new message of the same session (the old
        execution stays FAILED), and remove it from the dead-letter stream."""
        _check_id("entry_id", entry_id)
        key = self.keys.dead_letters()
        found: Any = await self.redis.xrange(key, min=entry_id, max=entry_id)
        if not found:
            raise ConfigurationError(f"entry_id: no dead letter {entry_id!r}")
        letter = msgspec.json.decode(found[0][1][b"data"])
        try:
            command = decode_command(letter["raw"])
        except ProtocolError as exc:
            raise ConfigurationError(f"entry_id: {entry_id!r} cannot be replayed: {exc}") from None
        if not isinstance(command, AskAgentCommand):
            raise ConfigurationError(
                f"entry_id: {entry_id!r} holds a {command.action_type} command; only "
                "AskAgent tasks are replayed"
            )
        header = msgspec.structs.replace(command.header, message_id=new_id("msg"))
        sent = await self.send_command(
            msgspec.structs.replace(command, header=header), require_online_worker=False
        )
        await self.redis.xdel(key, entry_id)
        return sent

    # -- reading ---------------------------------------------------------------------------

    async def stream(
        self,
        session_id: str,
        after: str = "0",
        *,
        until_message_id: str | None = None,
        stop_at_end: bool = False,
        block_ms: int = DEFAULT_STREAM_BLOCK_MS,
        idle_timeout: float | None = None,
    ) -> AsyncIterator[Event]:
        """The session's events after entry id ``after`` (``"0"``: from the start,
        ``"$"``: only new ones), as they arrive.

        Stops after the ``appStreamResponse`` of ``until_message_id`` (or of any root task
        with ``stop_at_end``), or when nothing arrived for ``idle_timeout`` seconds;
        otherwise runs until the consumer stops iterating.
        """
        _check_id("session_id", session_id)
        key = self.keys.session_stream(session_id)
        last = after
        if last == "$":
            last = await self.last_event_id(session_id)
        loop = asyncio.get_running_loop()
        deadline = None if idle_timeout is None else loop.time() + idle_timeout
        while True:
            block = block_ms
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                block = max(1, min(block_ms, int(remaining * 1000)))
            reply: Any = await self.redis.xread({key: last}, count=500, block=block)
            if not reply:
                continue
            if idle_timeout is not None:
                deadline = loop.time() + idle_timeout
            for entry_id, fields in reply[0][1]:
                last = entry_id.decode()
                try:
                    event = decode_event(
                        fields.get(b"data", b"") if isinstance(fields, dict) else b"",
                        last,
                        max_bytes=self.limits.max_command_bytes,
                        max_depth=self.limits.max_depth,
                    )
                except ProtocolError as exc:  # someone else's bytes must not end the stream
                    log.warning("session %s: skipped entry %s (%s)", session_id, last, exc)
                    continue
                yield event
                if event.event_type == EventType.APP_STREAM_RESPONSE and (
                    stop_at_end or event.message_id == until_message_id
                ):
                    return

    async def last_event_id(self, session_id: str) -> str:
        """The id of the session's newest event ("0" if none): read after it for what's new."""
        newest: Any = await self.redis.xrevrange(self.keys.session_stream(session_id), count=1)
        return newest[0][0].decode() if newest else "0"

    async def wait_for_final(
        self, session_id: str, message_id: str, *, after: str = "0", timeout: float | None = None
    ) -> Event:
        """The ``finalAnswer`` event of ``message_id`` (reads until its stream ends)."""
        final: Event | None = None
        async for event in self.stream(
            session_id, after, until_message_id=message_id, idle_timeout=timeout
        ):
            if event.event_type == EventType.FINAL_ANSWER and event.message_id == message_id:
                final = event
        if final is None:
            if timeout is None:  # the stream ended without one (or it did not decode)
                raise TimeoutError(f"the stream of {message_id} ended without a final answer")
            raise TimeoutError(f"no final answer for {message_id} within {timeout}s")
        return final
