"""Nothing the Redis checkpointer reads back runs code. Whoever can write to Redis could
rewrite a stored value into a msgpack extension that names any callable (``os.mkdir``
here, creating a marker directory), and LangGraph's default serializer imports and calls
it on load. The saver refuses such values with an error naming the type and how to allow
one, in the metadata, a channel value and a pending write; a real graph's own types (its
messages, models, dataclasses and enums) still round-trip, and a type the graph stores
without declaring it loads once allowed by argument or environment variable."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

import msgspec
import ormsgpack
import pytest
import redis.asyncio as aioredis
from byway_langgraph import CheckpointLoadError, LangGraphWorker, RedisCheckpointSaver, graph_types
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from pydantic import BaseModel

from byway import ConfigurationError, GatewayClient, RedisSettings
from tests.conftest import running

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]


# -- what an attacker writes -------------------------------------------------------------


def _ext(code: int, *fields: Any) -> ormsgpack.Ext:
    return ormsgpack.Ext(code, ormsgpack.packb(list(fields)))


def _payloads(marker: Path) -> dict[str, Any]:
    """Values that create ``marker`` if a loader imports and calls what they name, in each
    of the shapes LangGraph's decoder knows."""
    path = str(marker)
    return {
        "single-arg": _ext(0, "os", "mkdir", path),
        "positional": _ext(1, "os", "makedirs", [path]),
        "keywords": _ext(2, "os", "makedirs", {"name": path}),
        "pydantic": _ext(5, "os", "makedirs", {"name": path}, "model_validate_json"),
        "method": _ext(3, "os", "makedirs", path, "__call__"),
        # inside an allowed message: nested values are checked too
        "nested": _ext(
            5,
            "langchain_core.messages.human",
            "HumanMessage",
            {"content": "hi", "additional_kwargs": {"x": _ext(0, "os", "mkdir", path)}},
            "model_validate_json",
        ),
    }


SHAPES = ["single-arg", "positional", "keywords", "pydantic", "method", "nested"]


def _typed(value: Any) -> bytes:
    return b"msgpack\x00" + ormsgpack.packb(value)


async def _one_key(redis: aioredis.Redis, namespace: str, kind: str) -> bytes:
    [key] = [k async for k in redis.scan_iter(match=f"{namespace}:lg:*:{kind}:*")]
    return key


async def _saved(redis: aioredis.Redis, namespace: str) -> tuple[RedisCheckpointSaver, Any]:
    """A saver with one checkpoint holding a message channel and one pending write."""
    saver = RedisCheckpointSaver(redis, namespace=namespace)
    config = {"configurable": {"thread_id": f"t-{uuid.uuid4().hex[:6]}", "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": [HumanMessage("hello")]}
    checkpoint["channel_versions"] = {"messages": "1"}
    saved = await saver.aput(config, checkpoint, {"source": "input", "step": -1}, {"messages": "1"})
    await saver.aput_writes(saved, [("messages", [AIMessage("hi")])], "task-1")
    loaded = await saver.aget_tuple(saved)
    assert loaded is not None and loaded.checkpoint["channel_values"]["messages"][0].content == (
        "hello"
    )
    return saver, saved


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("where", ["checkpoint", "metadata", "channel value", "pending write"])
async def test_a_rewritten_value_never_runs_code_and_its_load_is_refused(
    redis: aioredis.Redis, namespace: str, tmp_path: Path, where: str, shape: str
) -> None:
    saver, saved = await _saved(redis, namespace)
    marker = tmp_path / "ran"
    payload = _payloads(marker)[shape]
    if where in ("checkpoint", "metadata"):
        await redis.hset(await _one_key(redis, namespace, "ck"), where, _typed(payload))
    elif where == "channel value":
        key = await _one_key(redis, namespace, "blobs")
        [field] = await redis.hkeys(key)
        await redis.hset(key, field, _typed(payload))
    else:
        key = await _one_key(redis, namespace, "wr")
        [field] = await redis.hkeys(key)
        row = ["task-1", "messages", "msgpack", ormsgpack.packb(payload), "", 0]
        await redis.hset(key, field, msgspec.msgpack.encode(row))

    refused: CheckpointLoadError | None = None
    try:
        loaded = await saver.aget_tuple(saved)
    except CheckpointLoadError as exc:
        refused, loaded = exc, None
    assert not marker.exists(), "loading called what the stored value names"
    assert refused is not None, f"loaded without an error: {loaded}"
    message = str(refused)
    assert "os:" in message  # the type (module and name) it names
    if shape != "method":  # how to allow a type; a method call cannot be allowed
        assert "allowed_types" in message and "BYWAY_CHECKPOINT_ALLOWED_TYPES=os:" in message
    field = {"channel value": "messages", "pending write": "task-1"}.get(where, where)
    assert f"field '{field}" in message
    # listing refuses it too, and still calls nothing
    with pytest.raises(CheckpointLoadError):
        _ = [item async for item in saver.alist(saved)]
    assert not marker.exists()


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (b"pickle\x00\x80\x04K\x01.", "serialized as 'pickle'"),
        (b'json\x00{"lc": 2, "type": "constructor", "id": ["os", "getcwd"]}', "as 'json'"),
        (b"msgpack\x00\xc1", "not valid msgpack"),
        (_typed(_ext(42, "os", "mkdir", "x")), "extension 42: unknown"),
        (_typed(_ext(0, "os")), "expected [module, name, ...]"),
    ],
)
async def test_what_this_saver_never_writes_is_refused_by_name(
    redis: aioredis.Redis, namespace: str, stored: bytes, expected: str
) -> None:
    saver, saved = await _saved(redis, namespace)
    await redis.hset(await _one_key(redis, namespace, "ck"), "metadata", stored)
    with pytest.raises(CheckpointLoadError, match="field 'metadata'") as refused:
        await saver.aget_tuple(saved)
    assert expected in str(refused.value)


async def test_a_malformed_pending_write_is_refused_naming_its_field(
    redis: aioredis.Redis, namespace: str
) -> None:
    saver, saved = await _saved(redis, namespace)
    key = await _one_key(redis, namespace, "wr")
    [field] = await redis.hkeys(key)
    await redis.hset(key, field, msgspec.msgpack.encode(["task-1", "messages"]))
    with pytest.raises(CheckpointLoadError, match=r"task-1.*bad write"):
        await saver.aget_tuple(saved)


# -- a real graph's own types ----------------------------------------------------------------


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Line(BaseModel):
    sku: str
    quantity: int


class Order(BaseModel):
    number: int
    lines: list[Line]  # nested: derived from Order's fields
    priority: Priority


@dataclasses.dataclass
class Note:
    text: str
    by: str


class Receipt(BaseModel):
    """Stored by the graph under an ``Any`` field: not declared anywhere."""

    total: float


class Extras(TypedDict, total=False):
    notes: list[Note]  # a dataclass nested in a TypedDict


class OrderState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    order: Order | None
    extras: Extras
    undeclared: Any


def _order_graph() -> Any:
    def take(state: OrderState) -> dict[str, Any]:
        previous = state.get("order")
        turn = 1 if previous is None else previous.number + 1
        notes = [*state.get("extras", {}).get("notes", []), Note(f"turn {turn}", "graph")]
        seen = type(previous).__name__ if previous is not None else "nothing"
        return {
            "order": Order(number=turn, lines=[Line(sku="a", quantity=turn)], priority="high"),
            "extras": {"notes": notes},
            "undeclared": Receipt(total=9.5 * turn),
            "messages": [AIMessage(f"turn {turn}, saw {seen} and {len(notes) - 1} note(s)")],
        }

    builder = StateGraph(OrderState)
    builder.add_node("take", take)
    builder.add_edge(START, "take")
    builder.add_edge("take", END)
    return builder.compile(name="orders")


order_graph = _order_graph()
RECEIPT = f"{__name__}:Receipt"


def test_the_types_a_graph_declares_are_derived_from_it() -> None:
    found = graph_types(order_graph)
    for cls in (Order, Line, Priority, Note):
        assert (cls.__module__, cls.__name__) in found, cls
    assert (Receipt.__module__, "Receipt") not in found


@pytest.mark.parametrize("checkpointer", ["auto", "given"])
async def test_a_graphs_messages_models_dataclasses_and_enums_round_trip_through_the_worker(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis, checkpointer: str
) -> None:
    """The worker's saver (its own, or one passed in) allows what the graph declares: the
    second turn loads the first turn's state as the graph's own types, and so does a fresh
    saver told the same."""
    given = RedisCheckpointSaver(redis, namespace=settings.namespace)
    worker = LangGraphWorker(
        order_graph,
        agent_type="orders",
        checkpoint_allowed_types=[Receipt],
        checkpointer="auto" if checkpointer == "auto" else given,
    )
    async with running(worker, settings):
        first = await client.send_message("orders", "lg-orders", "one")
        assert (await client.wait_for_final("lg-orders", first.message_id, timeout=20)).data[
            "status"
        ] == "COMPLETED"
        second = await client.send_message("orders", "lg-orders", "two")
        final = await client.wait_for_final("lg-orders", second.message_id, timeout=20)
    assert final.data["status"] == "COMPLETED", final.data
    assert final.data["content"] == "turn 2, saw Order and 1 note(s)"

    saver = RedisCheckpointSaver(
        redis, namespace=settings.namespace, allowed_types=graph_types(order_graph) | {RECEIPT}
    )
    state = await order_graph.copy(update={"checkpointer": saver}).aget_state(
        {"configurable": {"thread_id": "lg-orders:orders"}}
    )
    values = state.values
    assert isinstance(values["order"], Order) and values["order"].number == 2
    assert isinstance(values["order"].lines[0], Line)
    assert values["order"].priority is Priority.HIGH
    assert values["extras"]["notes"] == [Note("turn 1", "graph"), Note("turn 2", "graph")]
    assert isinstance(values["undeclared"], Receipt)
    assert [type(m) for m in values["messages"]] == [
        HumanMessage,
        AIMessage,
        HumanMessage,
        AIMessage,
    ]


async def test_a_type_the_graph_does_not_declare_loads_only_once_allowed(
    redis: aioredis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BYWAY_CHECKPOINT_ALLOWED_TYPES", raising=False)
    thread = {"configurable": {"thread_id": "undeclared"}}
    declared = graph_types(order_graph)

    def saver(**kwargs: Any) -> RedisCheckpointSaver:
        return RedisCheckpointSaver(redis, namespace=namespace, **kwargs)

    graph = order_graph.copy(update={"checkpointer": saver(allowed_types=declared)})
    await graph.ainvoke({"messages": [HumanMessage("one")]}, thread)  # writing is not limited

    with pytest.raises(CheckpointLoadError) as refused:
        await saver(allowed_types=declared).aget_tuple(thread)
    message = str(refused.value)
    assert f"refused to load type '{RECEIPT}'" in message
    assert f"BYWAY_CHECKPOINT_ALLOWED_TYPES={RECEIPT}" in message
    assert "undeclared" in message  # the channel it was stored in

    # the next turn of the graph fails the same way: no silent None, no raw dict
    with pytest.raises(CheckpointLoadError, match="Receipt"):
        await graph.ainvoke({"messages": [HumanMessage("two")]}, thread)

    by_argument = await saver(allowed_types=[*declared, Receipt]).aget_tuple(thread)
    assert by_argument is not None
    assert isinstance(by_argument.checkpoint["channel_values"]["undeclared"], Receipt)

    # LangGraph's own way to add types (its strict mode, the worker for a saver passed in)
    widened = saver(allowed_types=declared).with_allowlist({(Receipt.__module__, "Receipt")})
    by_langgraph = await widened.aget_tuple(thread)
    assert by_langgraph is not None
    assert isinstance(by_langgraph.checkpoint["channel_values"]["undeclared"], Receipt)

    monkeypatch.setenv("BYWAY_CHECKPOINT_ALLOWED_TYPES", f"mypkg.models:Other, {RECEIPT}")
    by_variable = await saver(allowed_types=declared).aget_tuple(thread)
    assert by_variable is not None
    assert by_variable.checkpoint["channel_values"]["undeclared"] == Receipt(total=9.5)

    monkeypatch.setenv("BYWAY_CHECKPOINT_ALLOWED_TYPES", "Receipt")
    with pytest.raises(ConfigurationError, match=r"BYWAY_CHECKPOINT_ALLOWED_TYPES.*'Receipt'"):
        saver()
    with pytest.raises(ConfigurationError, match="allowed_types"):
        saver(allowed_types=["not a type"])


async def test_a_run_whose_checkpoint_is_refused_fails_with_the_error(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """Served by a worker: the poisoned thread's next run ends FAILED, the refusal in its
    final answer, and the code it named never ran."""
    marker = tmp_path / "ran"
    worker = LangGraphWorker(order_graph, agent_type="orders", checkpoint_allowed_types=[Receipt])
    async with running(worker, settings):
        first = await client.send_message("orders", "lg-poison", "one")
        await client.wait_for_final("lg-poison", first.message_id, timeout=20)
        keys = [k async for k in redis.scan_iter(match=f"{settings.namespace}:lg:*:ck:*")]
        for key in keys:
            await redis.hset(key, "metadata", _typed(_ext(0, "os", "mkdir", str(marker))))
        second = await client.send_message("orders", "lg-poison", "two")
        final = await client.wait_for_final("lg-poison", second.message_id, timeout=20)
    assert final.data["status"] == "FAILED"
    assert "CheckpointLoadError" in final.data["content"]
    assert "refused to load type 'os:mkdir'" in final.data["content"]
    assert not marker.exists()
