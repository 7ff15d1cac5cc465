"""What a LangGraph worker serves, recorded in Redis for the LangGraph Server API.

The server has no graph: when a :class:`~byway_langgraph.LangGraphWorker` starts, it
writes its graph's description to ``<prefix>:lg:assistants`` (a hash: graph id → JSON),
and ``/assistants/*`` answer from there for the graphs whose workers are online:

- the assistant LangGraph Server makes for each graph (``assistant_id`` = a uuid5 of the
  graph id, the same one LangGraph Server gives it; name = the graph id; version 1;
  ``metadata={"created_by": "system"}``);
- the graph's JSON schemas (input, output, state, config, context) and its subgraphs';
- its drawable graph (``get_graph().to_json()``), plain and with ``xray``;
- its state channels (what a past checkpoint's ``values`` show).

Every part is bounded in size (an oversized one is recorded as null, and named in
``omitted``); a part LangGraph cannot produce is null too. Readers decode entries
defensively (:func:`read_assistants`): an entry that does not decode, or claims another
graph id than its field's, is skipped; the assistant id is always derived, never read.
The hash has no TTL: one field per graph id ever served, rewritten at every start.
"""

from __future__ import annotations

import uuid
import warnings
from typing import Any

import msgspec

from byway._log import get_logger
from byway.keys import Keys
from byway_langgraph._api_records import now_ms
from byway_langgraph._thread_state import api_json

__all__ = [
    "AssistantInfo",
    "assistant_id_of",
    "assistants_key",
    "find_recorded",
    "graph_description",
    "read_assistant",
    "read_assistants",
    "record_graph",
]

log = get_logger("byway.langgraph")

#: the namespace of assistant ids (the one LangGraph Server uses, so that a graph's
#: assistant has the same id under both servers)
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
#: the largest JSON schema recorded (each one)
MAX_SCHEMA_BYTES = 256 * 1024
#: the largest drawable graph recorded (each variant)
MAX_GRAPH_BYTES = 512 * 1024
#: the largest record of all subgraphs' schemas
MAX_SUBGRAPHS_BYTES = 512 * 1024
#: config keys that are the server's, not the graph's
_RESERVED_CONFIG = ("thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map")
_SCHEMA_KINDS = ("input_schema", "output_schema", "state_schema", "config_schema", "context_schema")

_enc = msgspec.json.Encoder()


class AssistantInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One graph as its worker recorded it (the JSON of one hash field)."""

    graph_id: str
    assistant_id: str = ""
    name: str = ""
    description: str | None = None
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    version: int = 1
    created_at: int = 0
    updated_at: int = 0
    #: input/output/state/config/context JSON schemas (null: not available)
    schemas: dict[str, dict[str, Any] | None] = msgspec.field(default_factory=dict)
    #: the drawable graph, plain and with subgraphs expanded (xray)
    graph: dict[str, Any] | None = None
    graph_xray: dict[str, Any] | None = None
    #: namespace → the subgraph's schemas (nested ones as "parent|child")
    subgraphs: dict[str, dict[str, dict[str, Any] | None]] = msgspec.field(default_factory=dict)
    #: the state keys a snapshot's ``values`` show
    state_channels: list[str] = msgspec.field(default_factory=list)
    #: parts left out for their size
    omitted: list[str] = msgspec.field(default_factory=list)


_dec = msgspec.json.Decoder(AssistantInfo)


def assistant_id_of(graph_id: str) -> str:
    """The assistant id of a graph's own assistant."""
    return str(uuid.uuid5(ASSISTANT_NAMESPACE, graph_id))


def assistants_key(keys: Keys) -> str:
    return f"{keys.prefix}:lg:assistants"


def _bounded(value: Any, limit: int) -> tuple[Any, bool]:
    """``value`` (JSON-safe) if its JSON fits in ``limit`` bytes, else (None, True)."""
    if value is None:
        return None, False
    safe = api_json(value)
    return (safe, False) if len(_enc.encode(safe)) <= limit else (None, True)


def _config_schema(graph: Any) -> dict[str, Any]:
    """The ``configurable`` part of the graph's config schema (what LangGraph Server
    shows), without the keys the server sets itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated in LangGraph 1.0, still what it shows
        full = graph.get_config_jsonschema()
    conf = (full.get("properties") or {}).get("configurable")
    if not isinstance(conf, dict):
        return {}
    defs = full.get("$defs") or {}
    ref = conf.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        schema = dict(defs.get(ref.rsplit("/", 1)[-1]) or {})
        others = {k: v for k, v in defs.items() if f"#/$defs/{k}" != ref}
        if others:
            schema["$defs"] = others
    else:
        schema = dict(conf)
    props = schema.get("properties")
    if isinstance(props, dict):
        schema["properties"] = {k: v for k, v in props.items() if k not in _RESERVED_CONFIG}
    return schema


def _state_schema(graph: Any) -> dict[str, Any]:
    """A JSON schema of the graph's state keys (a key whose type has none: any value)."""
    import pydantic

    fields: dict[str, Any] = {}
    for key in getattr(graph, "stream_channels_list", None) or []:
        kind = getattr(graph.channels.get(key), "UpdateType", Any)
        try:
            pydantic.TypeAdapter(kind).json_schema()
        except Exception:
            kind = Any
        fields[key] = (kind, None)
    model = pydantic.create_model(graph.get_name("State"), **fields)
    schema: dict[str, Any] = model.model_json_schema()
    return schema


def _schemas(graph: Any) -> dict[str, Any]:
    makers = {
        "input_schema": graph.get_input_jsonschema,
        "output_schema": graph.get_output_jsonschema,
        "state_schema": lambda: _state_schema(graph),
        "config_schema": lambda: _config_schema(graph),
        "context_schema": graph.get_context_jsonschema,
    }
    found: dict[str, Any] = {}
    for kind, make in makers.items():
        try:
            found[kind] = make()
        except Exception as exc:  # a schema LangGraph (or pydantic) cannot build
            log.info("graph %s: no %s (%s)", graph.get_name(), kind, exc)
            found[kind] = None
    return found


def _drawing(graph: Any, xray: bool) -> dict[str, Any] | None:
    try:
        drawn: dict[str, Any] = graph.get_graph(xray=xray).to_json()
    except Exception as exc:
        log.info("graph %s cannot be drawn (xray=%s): %s", graph.get_name(), xray, exc)
        return None
    for node in drawn.get("nodes", []):
        data = node.get("data") if isinstance(node, dict) else None
        if isinstance(data, dict):
            data.pop("id", None)  # the node's class path: nothing a client needs
    return drawn


def graph_description(graph_id: str, graph: Any, *, created_at: int = 0) -> AssistantInfo:
    """The record of ``graph`` served as ``graph_id`` (every part bounded)."""
    omitted: list[str] = []
    schemas: dict[str, dict[str, Any] | None] = {}
    for kind, schema in _schemas(graph).items():
        schemas[kind], big = _bounded(schema, MAX_SCHEMA_BYTES)
        if big:
            omitted.append(kind)
    drawn, big = _bounded(_drawing(graph, False), MAX_GRAPH_BYTES)
    omitted += ["graph"] if big else []
    xray, big = _bounded(_drawing(graph, True), MAX_GRAPH_BYTES)
    omitted += ["graph_xray"] if big else []
    subgraphs: dict[str, Any] = {}
    try:
        for namespace, sub in graph.get_subgraphs(recurse=True):
            subgraphs[str(namespace)] = _schemas(sub)
    except Exception as exc:
        log.info("graph %s: subgraphs not listed (%s)", graph_id, exc)
    subgraphs_safe, big = _bounded(subgraphs, MAX_SUBGRAPHS_BYTES)
    omitted += ["subgraphs"] if big else []
    now = now_ms()
    return AssistantInfo(
        graph_id=graph_id,
        assistant_id=assistant_id_of(graph_id),
        name=graph_id,
        description=None,
        metadata={"created_by": "system"},
        created_at=created_at or now,
        updated_at=now,
        schemas=schemas,
        graph=drawn,
        graph_xray=xray,
        subgraphs=subgraphs_safe or {},
        state_channels=[str(c) for c in getattr(graph, "stream_channels_list", None) or []],
        omitted=omitted,
    )


async def record_graph(redis: Any, keys: Keys, agent_type: str, graph: Any) -> AssistantInfo:
    """Write ``graph``'s record under ``agent_type`` (its graph id); keeps the first
    ``created_at`` a graph of that id was recorded with."""
    key = assistants_key(keys)
    previous = _decoded(agent_type, await redis.hget(key, agent_type))
    info = graph_description(agent_type, graph, created_at=previous.created_at if previous else 0)
    await redis.hset(key, agent_type, _enc.encode(info))
    if info.omitted:
        log.warning(
            "graph %s: recorded without %s (too large)", agent_type, ", ".join(info.omitted)
        )
    return info


def _decoded(graph_id: str, raw: Any) -> AssistantInfo | None:
    """The entry of ``graph_id``, or None when it is absent or not to be trusted."""
    if raw is None:
        return None
    try:
        info = _dec.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if info.graph_id != graph_id:
        return None
    info.assistant_id = assistant_id_of(graph_id)  # derived, never taken from Redis
    return info


async def read_assistant(redis: Any, keys: Keys, graph_id: str) -> AssistantInfo | None:
    """The record of one graph, if it has one that decodes."""
    return _decoded(graph_id, await redis.hget(assistants_key(keys), graph_id))


async def find_recorded(redis: Any, keys: Keys, assistant_id: str) -> AssistantInfo | None:
    """The record of the graph an assistant id (or a graph id) names."""
    info = await read_assistant(redis, keys, assistant_id)
    if info is not None:
        return info
    fields: Any = await redis.hkeys(assistants_key(keys))
    for field in fields:
        graph_id = field.decode(errors="replace") if isinstance(field, bytes) else str(field)
        if assistant_id_of(graph_id) == assistant_id:
            return await read_assistant(redis, keys, graph_id)
    return None


async def read_assistants(redis: Any, keys: Keys) -> dict[str, AssistantInfo]:
    """Every recorded graph that decodes, by graph id (online or not)."""
    raw: Any = await redis.hgetall(assistants_key(keys))
    found: dict[str, AssistantInfo] = {}
    for field, value in raw.items():
        graph_id = field.decode(errors="replace") if isinstance(field, bytes) else str(field)
        info = _decoded(graph_id, value)
        if info is not None:
            found[graph_id] = info
    return found
