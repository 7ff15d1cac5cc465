"""What the Redis checkpointer may rebuild from Redis: an allow-list of types, always on.

LangGraph's serializer stores a Python object as a msgpack extension naming its module
and class, and by default imports and calls whatever a stored value names: anyone who can
write to Redis could make a worker run ``os.system``. LangGraph has a strict mode
(``LANGGRAPH_STRICT_MSGPACK``, ``allowed_msgpack_modules``, allow-lists derived from a
graph's state schema), but it is off unless that variable is set, and a refused value
silently loads as its raw payload. :class:`StrictSerializer` builds on it and makes it
safe by default:

- the allow-list is LangGraph's safe types (datetimes, UUIDs, sets, LangGraph's own
  ``Send``/``Interrupt``/``Command``...), every LangChain message and chunk class and
  ``Document``, plus what the caller allows: the types the served graph declares in its
  state (:func:`graph_types`), ``allowed_types=`` and ``BYWAY_CHECKPOINT_ALLOWED_TYPES``;
- every msgpack value is inspected before LangGraph decodes it (nothing is imported or
  called while inspecting); a value that names any other type, a method call LangGraph
  does not allow, an unknown extension or a serialization this saver never writes
  (``json``, ``pickle``) raises :class:`CheckpointLoadError` naming it and how to allow
  it. Only then does LangGraph's own strict decoder, given the same allow-list, rebuild
  the value.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import ormsgpack
from langgraph.checkpoint.serde import _msgpack as lg_msgpack
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from byway import ConfigurationError, ProtocolError
from byway._log import get_logger

__all__ = [
    "ALLOWED_TYPES_ENV",
    "CheckpointLoadError",
    "StrictSerializer",
    "TypeSpec",
    "env_types",
    "graph_types",
    "parse_types",
]

log = get_logger("byway.langgraph")

#: comma list of ``module:Name`` the checkpointer may load besides the defaults
ALLOWED_TYPES_ENV = "BYWAY_CHECKPOINT_ALLOWED_TYPES"

#: a type to allow: the class itself, ``"module:Name"`` or ``("module", "Name")``
TypeSpec = type | str | tuple[str, str]

_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")

# LangGraph's msgpack extension codes (langgraph.checkpoint.serde.jsonplus)
_CONSTRUCTORS = {0, 1, 2, 4, 5}  # single arg, positional, keyword, pydantic v1 and v2
_METHOD = 3
_NUMPY = 6
_DELTA = 7

_PLAIN_KINDS = {"null", "bytes", "bytearray"}
#: the method calls LangGraph's decoder makes (datetime.fromisoformat), never more
_METHODS: frozenset[tuple[str, str, str]] = getattr(
    lg_msgpack, "SAFE_MSGPACK_METHODS", frozenset({("datetime", "datetime", "fromisoformat")})
)
_MAX_DEPTH = 100  # extensions inside extensions (a message in a model in a list: 3)


class CheckpointLoadError(ProtocolError):
    """A value read from the checkpointer's Redis was not loaded: it names a type that is
    not allowed, or it is malformed. The message says which value and how to allow a type."""


def _shown(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _refused(module: Any, name: Any) -> CheckpointLoadError:
    spec = _shown(f"{module}:{name}")
    return CheckpointLoadError(
        f"refused to load type {spec}: not on the checkpoint allow-list (nothing was "
        "imported). If your graph stores it, allow it: RedisCheckpointSaver(allowed_types=[...]), "
        f"LangGraphWorker(checkpoint_allowed_types=[...]) or {ALLOWED_TYPES_ENV}={spec[1:-1]}"
    )


def parse_types(
    specs: Iterable[TypeSpec], *, source: str = "allowed_types"
) -> set[tuple[str, str]]:
    """``(module, name)`` pairs of classes, ``"module:Name"`` strings or pairs; a bad entry
    raises :class:`ConfigurationError` naming ``source``."""
    found: set[tuple[str, str]] = set()
    for spec in specs:
        if isinstance(spec, type):
            found.add((spec.__module__, spec.__name__))  # as LangGraph stores it
        elif isinstance(spec, str) and _SPEC.fullmatch(spec.strip()):
            module, _, name = spec.strip().partition(":")
            found.add((module, name))
        elif (
            isinstance(spec, tuple)
            and len(spec) == 2
            and all(isinstance(part, str) and part for part in spec)
        ):
            found.add((spec[0], spec[1]))
        else:
            raise ConfigurationError(
                f"{source}: expected a class, 'module:Name' or ('module', 'Name'), got {spec!r}"
            )
    return found


def env_types(environ: Mapping[str, str] | None = None) -> set[tuple[str, str]]:
    """The types ``BYWAY_CHECKPOINT_ALLOWED_TYPES`` allows (``mypkg.models:Order,...``)."""
    raw = (os.environ if environ is None else environ).get(ALLOWED_TYPES_ENV, "")
    entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
    return parse_types(entries, source=ALLOWED_TYPES_ENV)


@functools.cache
def langchain_types() -> frozenset[tuple[str, str]]:
    """Every LangChain message and chunk class, and ``Document``: what real graphs keep."""
    from langchain_core import messages
    from langchain_core.documents import Document

    classes = [getattr(messages, name, None) for name in messages.__all__]
    found = {
        (cls.__module__, cls.__name__)
        for cls in classes
        if isinstance(cls, type) and issubclass(cls, messages.BaseMessage)
    }
    return frozenset(found | {(Document.__module__, Document.__name__)})


def graph_types(graph: Any) -> set[tuple[str, str]]:
    """The pydantic models, dataclasses and enums a compiled graph (and its subgraphs)
    declares in its state, input, output, context and node schemas, nested types included,
    as LangGraph's own strict mode derives them."""
    try:
        from langgraph._internal._serde import collect_allowlist_from_schemas
    except ImportError:  # an older LangGraph: only the explicit allow-list applies
        log.warning(
            "this LangGraph cannot list a graph's state types; allow them with %s",
            ALLOWED_TYPES_ENV,
        )
        return set()
    graphs = [graph]
    subgraphs = getattr(graph, "get_subgraphs", None)
    if callable(subgraphs):
        graphs += [sub for _, sub in subgraphs(recurse=True)]
    found: set[tuple[str, ...]] = set()
    for each in graphs:
        builder = getattr(each, "builder", None)
        schemas: list[Any] = [getattr(each, "context_schema", None)]
        if builder is not None:
            schemas += [
                getattr(builder, attr, None)
                for attr in ("state_schema", "input_schema", "output_schema", "context_schema")
            ]
            schemas += [getattr(n, "input_schema", None) for n in builder.nodes.values()]
            for branches in getattr(builder, "branches", {}).values():
                schemas += [getattr(b, "input_schema", None) for b in branches.values()]
        found |= collect_allowlist_from_schemas(
            schemas=[s for s in schemas if s is not None],
            channels=getattr(each, "channels", None),
        )
    return {(key[0], key[1]) for key in found if len(key) == 2}


class StrictSerializer(JsonPlusSerializer):
    """LangGraph's serializer in strict mode that refuses, loudly, what it may not load.

    ``StrictSerializer(allowed)`` allows LangGraph's safe types, LangChain's messages and
    documents and ``allowed`` (see :data:`TypeSpec`). Writing is LangGraph's, unchanged.
    """

    def __init__(self, allowed: Iterable[TypeSpec] = ()) -> None:
        self.allowed: frozenset[tuple[str, str]] = frozenset(parse_types(allowed)) | (
            langchain_types()
        )
        # an explicit list: LangGraph's strict decoder, whatever LANGGRAPH_STRICT_MSGPACK says
        super().__init__(allowed_msgpack_modules=sorted(self.allowed))

    def with_msgpack_allowlist(
        self, extra_allowlist: Iterable[tuple[str, ...] | type]
    ) -> StrictSerializer:
        """What LangGraph's strict mode calls to add a graph's types: a serializer that
        allows them too (still strict)."""
        extra = parse_types(
            key if isinstance(key, type) else (key[0], key[1])
            for key in extra_allowlist
            if isinstance(key, type) or len(key) == 2
        )
        if extra <= self.allowed:
            return self
        return StrictSerializer(self.allowed | extra)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        kind, raw = data
        if kind == "msgpack":
            self.check(raw)
        elif kind not in _PLAIN_KINDS:
            raise CheckpointLoadError(
                f"refused to load a value serialized as {_shown(kind)}: this checkpointer "
                "writes only msgpack"
            )
        return super().loads_typed(data)

    def check(self, raw: bytes) -> None:
        """Raise :class:`CheckpointLoadError` unless every type ``raw`` names is allowed."""
        inspector = _Inspector(self.allowed)
        try:
            ormsgpack.unpackb(raw, ext_hook=inspector, option=ormsgpack.OPT_NON_STR_KEYS)
        except (ValueError, TypeError, RecursionError) as exc:
            if inspector.refusal is not None:  # ormsgpack hides what the hook raised
                raise inspector.refusal from None
            raise CheckpointLoadError(f"not valid msgpack ({exc})") from None


class _Inspector:
    """An ormsgpack ext hook that only looks: every extension, nested ones too, must name
    an allowed type; nothing is imported or called, and every value decodes to None."""

    def __init__(self, allowed: frozenset[tuple[str, str]]) -> None:
        self.allowed = allowed
        self.refusal: CheckpointLoadError | None = None
        self.depth = 0

    def __call__(self, code: int, data: bytes) -> None:
        self.depth += 1
        try:
            if self.depth > _MAX_DEPTH:
                raise CheckpointLoadError(f"msgpack extensions nested deeper than {_MAX_DEPTH}")
            self._inspect(code, data)
        except CheckpointLoadError as exc:
            if self.refusal is None:  # the innermost: the one that names the type
                self.refusal = exc
            raise
        finally:
            self.depth -= 1

    def _inspect(self, code: int, data: bytes) -> None:
        value = ormsgpack.unpackb(data, ext_hook=self, option=ormsgpack.OPT_NON_STR_KEYS)
        if code == _DELTA or code == _NUMPY:  # plain data: no import, no call
            return
        if code not in _CONSTRUCTORS and code != _METHOD:
            raise CheckpointLoadError(f"refused to load msgpack extension {code}: unknown")
        if not (isinstance(value, list) and len(value) >= 3):
            raise CheckpointLoadError(f"msgpack extension {code}: expected [module, name, ...]")
        module, name = value[0], value[1]
        if not (isinstance(module, str) and isinstance(name, str)):
            raise CheckpointLoadError(f"msgpack extension {code}: module and name must be strings")
        if code == _METHOD:
            method = value[3] if len(value) > 3 else None
            if not isinstance(method, str) or (module, name, method) not in _METHODS:
                raise CheckpointLoadError(
                    f"refused to load a call of {_shown(f'{module}:{name}.{method}')}: "
                    "not a method LangGraph allows (nothing was imported)"
                )
            return
        if (module, name) not in self.allowed and (module, name) not in (
            lg_msgpack.SAFE_MSGPACK_TYPES
        ):
            raise _refused(module, name)
