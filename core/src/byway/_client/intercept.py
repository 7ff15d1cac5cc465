"""Client interceptors in the three forms the client accepts, told apart once, when added.

- Byway's: ``async def before_send(self, command) -> command`` (or a bare
  ``async def interceptor(command) -> command``).
- by-framework's README: ``async def before_send(self, command, header) -> (command,
  header)``; a header changed in place (``header.metadata["auth_token"] = ...``) or
  replaced is the one sent.
- by-framework's source: ``def before_send(self, params: dict) -> dict`` (synchronous),
  over the send's parameters (``target_agent_type``, ``session_id``, ``user_code``,
  ``user_name``, ``content``, ``parent_message_id``, ``extra_payload``, ``metadata``);
  it sees asks and resumes only, as there.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

import msgspec

from byway.errors import ConfigurationError
from byway.protocol import AskAgentCommand, Command, MessageHeader, ResumeCommand

__all__ = ["GatewayInterceptor", "Interceptor", "classify", "run_interceptor"]

Form = Literal["command", "pair", "params"]


class GatewayInterceptor(Protocol):
    """by-framework's documented interceptor: sees each command and its header before the
    command is written, and returns both (the header may be changed in place)."""

    async def before_send(
        self, command: Command, header: MessageHeader
    ) -> tuple[Command, MessageHeader]: ...


#: anything :meth:`GatewayClient.add_interceptor` takes
Interceptor = Any

_HEADER_PARAMS = ("target_agent_type", "session_id", "user_code", "user_name", "parent_message_id")


def _positional(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def classify(interceptor: Interceptor) -> tuple[Form, Callable[..., Any]]:
    """The interceptor's form and the function to call; ConfigurationError if it has none."""
    fn = getattr(interceptor, "before_send", None)
    if fn is None:
        if not callable(interceptor):
            raise ConfigurationError(
                "interceptor: expected an object with before_send() or an async callable, "
                f"got {type(interceptor).__name__}"
            )
        fn = interceptor
    asynchronous = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    )
    count = _positional(fn)
    if count == 2 and asynchronous:
        return "pair", fn
    if count == 1 and asynchronous:
        return "command", fn
    if count == 1 and getattr(interceptor, "before_send", None) is not None:
        return "params", fn
    raise ConfigurationError(
        f"interceptor: {type(interceptor).__name__}.before_send must be "
        "'async def before_send(self, command)', 'async def before_send(self, command, "
        "header)' or 'def before_send(self, params: dict)'"
    )


async def run_interceptor(form: Form, fn: Callable[..., Any], command: Command) -> Command:
    """``command`` as the interceptor returns it."""
    if form == "command":
        result: Any = await fn(command)
    elif form == "pair":
        result = await _pair(fn, command)
    else:
        result = _params(fn, command)
    if not isinstance(getattr(result, "header", None), MessageHeader):
        raise ConfigurationError(
            f"interceptor: before_send returned {type(result).__name__}, expected a command"
        )
    return result  # type: ignore[no-any-return]


async def _pair(fn: Callable[..., Awaitable[Any]], command: Command) -> Command:
    returned = await fn(command, command.header)
    if not (isinstance(returned, tuple) and len(returned) == 2):
        raise ConfigurationError(
            "interceptor: before_send(command, header) must return (command, header), "
            f"got {type(returned).__name__}"
        )
    new_command, header = returned
    if not isinstance(header, MessageHeader):
        raise ConfigurationError(
            f"interceptor: before_send returned a header of type {type(header).__name__}, "
            "expected MessageHeader"
        )
    if getattr(new_command, "header", None) is not header:
        new_command = msgspec.structs.replace(new_command, header=header)
    return new_command  # type: ignore[no-any-return]


def _params(fn: Callable[..., Any], command: Command) -> Command:
    if not isinstance(command, (AskAgentCommand, ResumeCommand)):
        return command
    header = command.header
    params: dict[str, Any] = {name: getattr(header, name) for name in _HEADER_PARAMS}
    params.update(
        content=command.content,
        action_type=str(command.action_type),
        extra_payload=dict(command.extra_payload),
        metadata=dict(header.metadata),
    )
    out = fn(params)
    if not isinstance(out, dict):
        raise ConfigurationError(
            f"interceptor: before_send(params) must return a dict, got {type(out).__name__}"
        )
    changes = {name: out[name] for name in _HEADER_PARAMS if name in out}
    if "metadata" in out:
        changes["metadata"] = out["metadata"]
    for name, value in changes.items():
        want = dict if name == "metadata" else str
        if not isinstance(value, want):
            raise ConfigurationError(
                f"interceptor: params[{name!r}]: expected {want.__name__}, "
                f"got {type(value).__name__}"
            )
    body: dict[str, Any] = {"header": msgspec.structs.replace(header, **changes)}
    if "content" in out:
        body["content"] = out["content"]
    if isinstance(out.get("extra_payload"), dict):
        body["extra_payload"] = out["extra_payload"]
    return msgspec.structs.replace(command, **body)
