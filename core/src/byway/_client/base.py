"""The client's state and its sending: one command to an agent type's or a worker's
stream, through the SEND script or (without scripts) a plain XADD."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from byway import tracing
from byway._client.intercept import Form, Interceptor, classify, run_interceptor
from byway._client.types import (
    RoutePolicy,
    SendMessageResponse,
    checked_content,
    checked_id,
    queued,
)
from byway._log import get_logger
from byway._scriptless import scripts_setting
from byway.config import STRATEGIES
from byway.errors import ConfigurationError
from byway.flow import Flow, SendOutcome
from byway.keys import Keys
from byway.limits import Limits
from byway.protocol import AskAgentCommand, Command, Content, MessageHeader, new_id, now_ms
from byway.redis_client import bytes_client
from byway.registry import WorkerRegistry
from byway.settings import RedisSettings
from byway.signing import Signer

__all__ = ["ClientBase"]

log = get_logger("byway.client")


class ClientBase:
    """What every part of the client uses (Redis, keys, registry, flow, limits, scripts or
    not, interceptors) and sending (``send_message``, ``send_command``)."""

    def __init__(
        self,
        redis: aioredis.Redis | None = None,
        *,
        settings: RedisSettings | None = None,
        stream_maxlen: int = 0,
        scripts: bool | None = None,
        limits: Limits | None = None,
        signer: Signer | None = None,
        redis_client: aioredis.Redis | None = None,
        registry: WorkerRegistry | None = None,
        interceptors: Iterable[Interceptor] | None = None,
    ) -> None:
        """``scripts``: True runs Lua scripts only, False never (the ACL client role);
        None (default, or ``$BYWAY_CLIENT_SCRIPTS``) runs them until Redis refuses one
        (NOPERM), then goes on without. ``limits`` (default: :meth:`Limits.from_env`)
        bounds what it sends and reads. ``signer=None`` signs commands as
        ``BYWAY_SIGNING_KEYS`` says (unset: unsigned).

        by-framework's form, ``GatewayClient(redis_client=redis, registry=registry,
        interceptors=[...])``, is accepted beside it: ``redis_client`` is ``redis``
        (else the registry's client), and the registry must use the client's keys. A
        client that decodes replies (``decode_responses=True``) is read through its
        bytes-mode twin (:func:`byway.redis_client.bytes_client`). ``close()`` closes
        only a client this one created itself."""
        if redis is not None and redis_client is not None:
            raise ConfigurationError("redis_client: pass either redis or redis_client, not both")
        given = redis if redis is not None else redis_client
        if given is None and registry is not None:
            given = registry.redis
        self.settings = settings or RedisSettings.from_env()
        self._scripts = scripts_setting(scripts)
        self.limits = limits or Limits.from_env()
        self._owns_redis = given is None
        self.redis = bytes_client(given) if given is not None else self.settings.client()
        self.keys: Keys = self.settings.keys
        if registry is not None and registry.keys != self.keys:
            raise ConfigurationError(
                f"registry: its keys ({registry.keys.namespace!r}, {registry.keys.schema}) "
                f"differ from the client's ({self.keys.namespace!r}, {self.keys.schema}); "
                "set BYWAY_NAMESPACE for both, or pass the registry keys=settings.keys"
            )
        self.registry = registry or WorkerRegistry(self.redis, self.keys)
        self.stream_maxlen = stream_maxlen
        self.flow = Flow(
            self.redis,
            self.keys,
            record_ttl_s=self.registry.record_ttl_s,
            stream_maxlen=stream_maxlen,
            max_command_bytes=self.limits.max_command_bytes,
            signer=signer if signer is not None else Signer.from_env(),
        )
        self._interceptors: list[tuple[Form, Callable[..., Any]]] = []
        for interceptor in interceptors or ():
            self.add_interceptor(interceptor)

    @classmethod
    def from_url(cls, url: str | None = None, **settings: Any) -> Self:
        """A client for ``url`` (``None``: environment, else the embedded Redis)."""
        base = RedisSettings.from_env() if url is None else RedisSettings.from_url(url)
        return cls(settings=replace(base, **settings) if settings else base)

    async def __aenter__(self) -> Self:
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

    def add_interceptor(self, interceptor: Interceptor) -> None:
        """Run ``interceptor`` on every command before it is sent, in the order added:
        Byway's ``async before_send(command) -> command`` (or an async callable), or
        by-framework's ``async before_send(command, header) -> (command, header)`` or
        ``before_send(params: dict) -> dict`` (see :mod:`byway._client.intercept`)."""
        self._interceptors.append(classify(interceptor))

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
        for form, fn in self._interceptors:
            command = await run_interceptor(form, fn, command)
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
        route_policy: str | None = None,
    ) -> SendMessageResponse:
        """Queue an AskAgent for ``target_agent_type`` in ``session_id``.

        With ``target_worker_id`` the command goes to that worker's own stream instead of
        the agent type's queue. With ``require_online_worker`` (default) the message is
        refused unless a live worker can take it. While the session runs another root
        task, ``multitask_strategy`` (default: the agent type's, else ``enqueue``) decides:
        ``enqueue`` runs it afterwards, ``reject`` refuses it (``SESSION_BUSY``),
        ``interrupt`` cancels the running task and runs this one next. by-framework's
        ``route_policy`` (:class:`RoutePolicy`) is accepted: ``FAIL_FAST`` is
        ``require_online_worker=True``, ``SEND_ANYWAY`` and ``QUEUE_ONLY`` are False (the
        message waits in the agent type's queue for a worker); Byway starts no workers, so
        the wake-up policies are refused.
        """
        if route_policy is not None:
            if route_policy not in RoutePolicy.ACCEPTED:
                raise ConfigurationError(
                    f"route_policy: expected one of {', '.join(RoutePolicy.ACCEPTED)}, got "
                    f"{route_policy!r} (Byway starts no workers: there is nothing to wake)"
                )
            require_online_worker = route_policy == RoutePolicy.FAIL_FAST
        if multitask_strategy is not None and multitask_strategy not in STRATEGIES:
            raise ConfigurationError(
                f"multitask_strategy: expected one of {', '.join(STRATEGIES)}, "
                f"got {multitask_strategy!r}"
            )
        checked_id("target_agent_type", target_agent_type)
        checked_id("session_id", session_id)
        if target_worker_id is not None:
            checked_id("target_worker_id", target_worker_id)
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
            content=checked_content(content),
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
        return queued(header, worker, now, entry.decode())

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
        return queued(
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
