"""What a LangGraph Server API run asks a worker to do, checked on both sides.

The server turns a ``POST /threads/{id}/runs...`` body into a :class:`RunSpec` and puts
``spec.to_wire()`` in the command that starts (or resumes) the run: in
``header.metadata["langgraph_api"]`` of an ask, in ``extra_payload["langgraph_api"]`` of
a resume (a resume's header carries no metadata). The worker reads it back with
:func:`check_spec` again: a command on the stream is not trusted because the server
checked it once. Everything in it is JSON; nothing names code to run or a path to open —
``configurable`` keys LangGraph reserves (``__pregel_...``) are dropped, and so are the
thread's ids: they are the worker's to set.

Each chunk the graph streams goes back on the session stream as a ``stepComplete``
state event ``state = "langgraph"`` with ``metadata = {"mode", "ns", "data"}``
(:data:`EVENT_STATE`); the server turns it into the SSE frame ``event: <mode>`` (or
``<mode>|<ns>|...`` from a subgraph) LangGraph's clients read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from byway import ConfigurationError

__all__ = [
    "API_KEY",
    "EVENT_STATE",
    "STREAM_MODES",
    "RunSpec",
    "check_spec",
    "event_name",
    "mode_matches",
    "spec_of",
]

#: the metadata / extra_payload key of an API run's spec
API_KEY = "langgraph_api"
#: the state name of the events that carry the graph's chunks
EVENT_STATE = "langgraph"
#: the stream modes a run may ask for (``messages-tuple``: the graph's ``messages``
#: chunks as ``[message, metadata]``; ``messages``: LangGraph Server's
#: ``messages/partial`` and ``messages/complete``; ``events``: ``astream_events`` v2)
STREAM_MODES = (
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "custom",
    "debug",
    "tasks",
    "checkpoints",
    "events",
)
_CONFIG_KEYS = (
    "configurable",
    "metadata",
    "tags",
    "recursion_limit",
    "run_name",
    "max_concurrency",
)
_DURABILITY = ("sync", "async", "exit")
#: configurable keys the worker sets itself (the thread's ids) and drops from a request
_OWN_KEYS = ("thread_id", "checkpoint_map")
_MAX_NAMES = 200
_MAX_NAME = 256


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One run's request, checked."""

    run_id: str
    stream_mode: tuple[str, ...] = ("values",)
    subgraphs: bool = False
    input: Any = None
    #: ``{"resume"?, "update"?, "goto"?}`` as given (``resume`` present means resume)
    command: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] | None = None
    interrupt_before: str | tuple[str, ...] | None = None
    interrupt_after: str | tuple[str, ...] | None = None
    checkpoint_id: str = ""
    checkpoint_ns: str = ""
    durability: str = ""
    #: a stateless run's thread, deleted with its checkpoints once the run stops
    temporary: bool = False

    @property
    def resumes(self) -> bool:
        return self.command is not None and "resume" in self.command

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"run_id": self.run_id, "stream_mode": list(self.stream_mode)}
        for name in ("subgraphs", "temporary"):
            if getattr(self, name):
                wire[name] = True
        for name in ("input", "command", "context", "checkpoint_id", "checkpoint_ns", "durability"):
            value = getattr(self, name)
            if value not in (None, ""):
                wire[name] = value
        if self.config:
            wire["config"] = self.config
        for name in ("interrupt_before", "interrupt_after"):
            value = getattr(self, name)
            if value is not None:
                wire[name] = value if isinstance(value, str) else list(value)
        return wire


def spec_of(command: Any) -> dict[str, Any] | None:
    """The raw ``langgraph_api`` dict a command carries, if any."""
    header = getattr(command, "header", None)
    for source in (getattr(header, "metadata", None), getattr(command, "extra_payload", None)):
        if isinstance(source, dict):
            raw = source.get(API_KEY)
            if isinstance(raw, dict):
                return raw
    return None


def check_spec(raw: Any) -> RunSpec:
    """A :class:`RunSpec` from its wire form; :class:`ConfigurationError` names the field."""
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{API_KEY}: expected an object, got {type(raw).__name__}")
    run_id = raw.get("run_id")
    if not isinstance(run_id, str) or not run_id or len(run_id) > _MAX_NAME:
        raise ConfigurationError("run_id: expected the run's id")
    checkpoint = raw.get("checkpoint")
    config, ids = _config(raw.get("config"))
    if checkpoint is not None:
        ids.update(_checkpoint(checkpoint))
    for name in ("checkpoint_id", "checkpoint_ns"):
        if raw.get(name) is not None:
            ids[name] = _name(name, raw[name], empty=True)
    context = raw.get("context")
    if context is not None and not isinstance(context, dict):
        raise ConfigurationError(f"context: expected an object, got {type(context).__name__}")
    durability = raw.get("durability") or ""
    if durability and durability not in _DURABILITY:
        raise ConfigurationError(f"durability: expected one of {', '.join(_DURABILITY)}")
    return RunSpec(
        run_id=run_id,
        stream_mode=_modes(raw.get("stream_mode")),
        subgraphs=_flag("stream_subgraphs", raw.get("subgraphs", raw.get("stream_subgraphs"))),
        input=raw.get("input"),
        command=_command(raw.get("command")),
        config=config,
        context=context or None,
        interrupt_before=_nodes("interrupt_before", raw.get("interrupt_before")),
        interrupt_after=_nodes("interrupt_after", raw.get("interrupt_after")),
        checkpoint_id=ids.get("checkpoint_id", ""),
        checkpoint_ns=ids.get("checkpoint_ns", ""),
        durability=durability,
        temporary=_flag("temporary", raw.get("temporary")),
    )


def _flag(name: str, value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name}: expected true or false, got {value!r}")
    return value


def _name(where: str, value: Any, *, empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > _MAX_NAME or (not value and not empty):
        raise ConfigurationError(f"{where}: expected a name (a string up to {_MAX_NAME} chars)")
    return value


def _modes(value: Any) -> tuple[str, ...]:
    if value is None or value == []:
        return ("values",)
    modes = [value] if isinstance(value, str) else value
    if not isinstance(modes, list) or len(modes) > len(STREAM_MODES) * 2:
        raise ConfigurationError("stream_mode: expected a stream mode or a list of them")
    for mode in modes:
        if mode not in STREAM_MODES:
            raise ConfigurationError(
                f"stream_mode: {mode!r} is not one this server streams "
                f"(expected {', '.join(STREAM_MODES)})"
            )
    return tuple(dict.fromkeys(modes))


def _nodes(name: str, value: Any) -> str | tuple[str, ...] | None:
    if value is None:
        return None
    if value == "*":
        return "*"
    if not isinstance(value, list) or len(value) > _MAX_NAMES:
        raise ConfigurationError(f"{name}: expected '*' or a list of node names")
    return tuple(_name(name, node) for node in value)


def _command(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigurationError(f"command: expected an object, got {type(value).__name__}")
    unknown = set(value) - {"resume", "update", "goto"}
    if unknown:
        raise ConfigurationError(f"command.{sorted(unknown)[0]}: not a command field")
    command: dict[str, Any] = {k: v for k, v in value.items() if k == "resume" or v is not None}
    update = command.get("update")
    if update is not None and not isinstance(update, dict):
        pairs = isinstance(update, list) and all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in update
        )
        if not pairs:
            raise ConfigurationError("command.update: expected an object or [key, value] pairs")
    goto = command.get("goto")
    if goto is not None:
        for target in goto if isinstance(goto, list) else [goto]:
            if isinstance(target, dict):
                if set(target) - {"node", "input"} or "node" not in target:
                    raise ConfigurationError("command.goto: a Send is {node, input}")
                _name("command.goto.node", target["node"])
            else:
                _name("command.goto", target)
    return command


def _config(value: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The run config as the worker may use it, and the checkpoint ids found in it."""
    if value is None:
        return {}, {}
    if not isinstance(value, dict):
        raise ConfigurationError(f"config: expected an object, got {type(value).__name__}")
    config: dict[str, Any] = {}
    ids: dict[str, str] = {}
    for key, item in value.items():
        if key not in _CONFIG_KEYS:
            raise ConfigurationError(
                f"config.{key}: not accepted (expected {', '.join(_CONFIG_KEYS)})"
            )
        if item is None:
            continue
        if key in ("configurable", "metadata"):
            if not isinstance(item, dict):
                raise ConfigurationError(f"config.{key}: expected an object")
            if key == "configurable":
                item, ids = _configurable(item)
            config[key] = item
        elif key == "tags":
            if not isinstance(item, list) or len(item) > _MAX_NAMES:
                raise ConfigurationError("config.tags: expected a list of strings")
            config[key] = [_name("config.tags", tag) for tag in item]
        elif key == "run_name":
            config[key] = _name("config.run_name", item)
        else:
            if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 100_000:
                raise ConfigurationError(f"config.{key}: expected a whole number from 1")
            config[key] = item
    return config, ids


def _configurable(value: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    configurable: dict[str, Any] = {}
    ids: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or len(key) > _MAX_NAME:
            raise ConfigurationError("config.configurable: expected names as keys")
        if key.startswith("__") or key in _OWN_KEYS:
            # LangGraph's own (RemoteGraph forwards __pregel_resuming), or the thread's
            # ids, which are the worker's to set: dropped
            continue
        if key in ("checkpoint_id", "checkpoint_ns"):
            if item is not None:
                ids[key] = _name(f"config.configurable.{key}", item, empty=True)
            continue
        configurable[key] = item
    return configurable, ids


def _checkpoint(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigurationError("checkpoint: expected {checkpoint_id, checkpoint_ns, ...}")
    ids: dict[str, str] = {}
    for name in ("checkpoint_id", "checkpoint_ns"):
        if value.get(name) is not None:
            ids[name] = _name(f"checkpoint.{name}", value[name], empty=True)
    return ids


def event_name(mode: str, ns: list[str] | tuple[str, ...]) -> str:
    """The SSE event name of a chunk: ``mode``, or ``mode|ns1|ns2`` from a subgraph."""
    return "|".join([mode, *ns]) if ns else mode


def mode_matches(mode: str, requested: tuple[str, ...] | list[str] | set[str]) -> bool:
    """Whether a chunk published under ``mode`` is one of the ``requested`` stream modes."""
    if mode in requested:
        return True
    if mode == "messages":
        return "messages-tuple" in requested
    if mode.startswith("messages/"):
        return "messages" in requested
    return False
