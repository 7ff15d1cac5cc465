"""by-framework's documented client API on Byway, with only the import renamed.

The README's "Quick Start" send, "Sending Tasks" (GatewayClient with user_code and
metadata, cancel with a reason), "ByaiGatewayClient" and "Interceptors", against real
workers. ``init_redis`` makes a client that decodes replies (by-framework's default) and
has no namespace: the Byway client built on it takes the namespace from
``BYWAY_NAMESPACE``, which each test sets to its own random one (the ``redis`` fixture
deletes its keys afterwards). ``init_redis`` is process-wide: the autouse fixture closes
it after every test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import redis.asyncio as aioredis

from byway import (
    AgentContext,
    BaiYingMessage,
    BaiYingMessageRole,
    ByaiAskAgentCommand,
    ByaiContentCodec,
    ByaiGatewayClient,
    ByaiWorker,
    CancelTaskResponse,
    Command,
    ConfigurationError,
    GatewayClient,
    GatewayWorker,
    MessageContent,
    MessageFile,
    ProtocolError,
    RedisSettings,
    Resource,
    WorkerRegistry,
    close_redis,
    deserialize_byai_content,
    get_redis,
    init_redis,
    serialize_byai_content,
)
from byway import redis_client as redis_client_module
from tests.conftest import running, spawn_worker, stop_process, until_status, wait_online

pytestmark = [pytest.mark.redis, pytest.mark.standalone]


def connection_kwargs(url: str) -> dict[str, Any]:
    """``init_redis`` arguments for the test Redis's URL (TCP or a unix socket)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return {"unix_socket_path": parts.path}
    return {
        "host": parts.hostname or "localhost",
        "port": parts.port or 6379,
        "db": int(parts.path.strip("/") or 0),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "ssl": parts.scheme == "rediss",
    }


@pytest.fixture(autouse=True)
async def byai_env(
    monkeypatch: pytest.MonkeyPatch, settings: RedisSettings, redis: aioredis.Redis
) -> AsyncIterator[None]:
    """The test's namespace for clients built without settings; no global client left."""
    monkeypatch.setenv("BYWAY_NAMESPACE", settings.namespace)
    assert redis_client_module._client is None
    yield
    await close_redis()


def session() -> str:
    return f"sess-{uuid.uuid4().hex[:8]}"


class Recorder(GatewayWorker):
    """Keeps every command it runs; blocks on "block" until cancelled."""

    def __init__(self, agent_type: str) -> None:
        super().__init__()
        self.agent_type = agent_type
        self.commands: list[Command] = []

    def get_agent_types(self) -> list[str]:
        return [self.agent_type]

    async def process_command(self, command: Command, context: AgentContext) -> Any:
        self.commands.append(command)
        if getattr(command, "content", "") == "block":
            await context.until_cancelled(asyncio.Event().wait())
        return "done"


async def ended(client: GatewayClient, session_id: str, message_id: str) -> list[Any]:
    return [e async for e in client.stream(session_id, until_message_id=message_id)]


# -- the README's examples -------------------------------------------------------------------


async def test_quick_start_send(settings: RedisSettings, redis_url: str) -> None:
    """Quick Start step 4 against step 1's worker in its own process."""
    proc = spawn_worker("tests.agents.compat_client:MyAgent", settings)
    try:
        redis = init_redis(**connection_kwargs(redis_url))
        registry = WorkerRegistry(redis_client=redis)
        client = ByaiGatewayClient(redis_client=redis, registry=registry)
        await wait_online(client, "my_agent")

        resp = await client.send_message(
            target_agent_type="my_agent",
            session_id="demo-session",
            content="Hello!",
        )
        assert resp.success, resp.error
        assert resp.message_id
        events = await ended(client, "demo-session", resp.message_id)
        chunks = [e.data["content"] for e in events if e.kind == "chunk"]
        assert chunks == ["Hello from your agent!"]
        record = await registry.get_execution_by_message("demo-session", resp.message_id)
        assert record is not None and record.status == "COMPLETED"
        assert await redis.ping() is True  # the user's client is theirs, still decoding
        assert isinstance(await redis.echo("x"), str)

        await close_redis()
    finally:
        stop_process(proc)


async def test_gateway_client_user_code_and_metadata(
    settings: RedisSettings, redis_url: str
) -> None:
    worker = Recorder(f"agent-{uuid.uuid4().hex[:6]}")
    redis = init_redis(**connection_kwargs(redis_url))
    client = GatewayClient(redis_client=redis, registry=WorkerRegistry(redis_client=redis))
    sid = session()
    async with running(worker, settings):
        resp = await client.send_message(
            target_agent_type=worker.agent_type,
            session_id=sid,
            content="Your task content",
            user_code="user-123",
            metadata={"priority": "high"},
        )
        assert resp.success, resp.error
        final = await client.wait_for_final(sid, resp.message_id)
    assert final.data["status"] == "COMPLETED"
    header = worker.commands[0].header
    assert header.user_code == "user-123"
    assert header.metadata["priority"] == "high"
    execution = await client.registry.get_execution_by_message(sid, resp.message_id)
    assert execution is not None and execution.user_code == "user-123"


class AuthInterceptor:
    """The README's interceptor, as written there."""

    async def before_send(self, command, header):  # type: ignore[no-untyped-def]
        header.metadata["auth_token"] = "..."
        return command, header


class ParamsInterceptor:
    """by-framework's source form: a dict of the send's parameters, synchronous."""

    def before_send(self, params: dict[str, Any]) -> dict[str, Any]:
        params["metadata"]["tenant"] = "acme"
        params["user_code"] = "from-params"
        return params


class ByteInterceptor:
    """Byway's form: the command in, the command out."""

    async def before_send(self, command: Command) -> Command:
        command.header.metadata["byway"] = True
        return command


async def test_interceptors_metadata_reaches_the_worker(
    settings: RedisSettings, redis_url: str
) -> None:
    worker = Recorder(f"agent-{uuid.uuid4().hex[:6]}")
    redis = init_redis(**connection_kwargs(redis_url))
    client = GatewayClient(redis_client=redis, registry=WorkerRegistry(redis_client=redis))
    client.add_interceptor(AuthInterceptor())
    client.add_interceptor(ParamsInterceptor())
    client.add_interceptor(ByteInterceptor())
    sid = session()
    async with running(worker, settings):
        resp = await client.send_message(
            target_agent_type=worker.agent_type, session_id=sid, content="hi"
        )
        assert resp.success, resp.error
        await client.wait_for_final(sid, resp.message_id)
    header = worker.commands[0].header
    assert header.metadata["auth_token"] == "..."
    assert header.metadata["tenant"] == "acme"
    assert header.metadata["byway"] is True
    assert header.user_code == "from-params"


async def test_interceptor_forms_are_checked_when_added(settings: RedisSettings) -> None:
    class Sync:
        def before_send(self, command, header):  # type: ignore[no-untyped-def]
            return command, header

    async with GatewayClient(settings=settings) as client:
        with pytest.raises(ConfigurationError, match="interceptor"):
            client.add_interceptor(Sync())
        with pytest.raises(ConfigurationError, match="interceptor"):
            client.add_interceptor(object())


async def test_interceptor_must_return_the_pair(settings: RedisSettings) -> None:
    class Wrong:
        async def before_send(self, command, header):  # type: ignore[no-untyped-def]
            return command

    async with GatewayClient(settings=settings, interceptors=[Wrong()]) as client:
        with pytest.raises(ConfigurationError, match=r"\(command, header\)"):
            await client.send_message("nobody", session(), "hi", require_online_worker=False)


async def test_cancel_task_with_reason(settings: RedisSettings, redis_url: str) -> None:
    worker = Recorder(f"agent-{uuid.uuid4().hex[:6]}")
    redis = init_redis(**connection_kwargs(redis_url))
    client = GatewayClient(redis_client=redis, registry=WorkerRegistry(redis_client=redis))
    sid = session()
    async with running(worker, settings):
        resp = await client.send_message(
            target_agent_type=worker.agent_type, session_id=sid, content="block"
        )
        await until_status(client, sid, resp.message_id, "RUNNING")
        cancelled = await client.cancel_task(
            message_id=resp.message_id,
            session_id=sid,
            reason="User requested",
        )
        assert isinstance(cancelled, CancelTaskResponse)
        assert cancelled.success and cancelled.status == "CANCEL_REQUESTED"
        assert cancelled.cancelled_count == cancelled.count == 1
        assert cancelled.message_id == resp.message_id and cancelled.execution_id
        record = await until_status(client, sid, resp.message_id, "CANCELLED")
        again = await client.cancel_task(message_id=resp.message_id, session_id=sid)
    assert record.cancel_reason == "User requested"
    assert not again.success and again.status == "ALREADY_FINISHED"
    final = [e for e in await ended(client, sid, resp.message_id) if e.kind == "final"]
    assert final[0].data["status"] == "CANCELLED"


async def test_byai_gateway_client_to_byai_worker(settings: RedisSettings, redis_url: str) -> None:
    """A BaiYingMessage sent by ByaiGatewayClient reaches a ByaiWorker (its own process)
    as a BaiYingMessage, files and all."""
    proc = spawn_worker("tests.agents.compat_client:ChatAgent", settings)
    try:
        redis = init_redis(**connection_kwargs(redis_url))
        registry = WorkerRegistry(redis_client=redis)
        client = ByaiGatewayClient(redis_client=redis, registry=registry)
        await wait_online(client, "chat_agent")
        sid = session()
        resp = await client.send_message(
            target_agent_type="chat_agent",
            session_id=sid,
            content=BaiYingMessage(role="user", content="Hello"),  # type: ignore[arg-type]
        )
        final = await client.wait_for_final(sid, resp.message_id)
        assert final.data["content"] == "Hello"
        assert final.data["reply_data"] == {
            "type": "BaiYingMessage",
            "command": "ByaiAskAgentCommand",
            "context": "ByaiAgentContext",
            "role": "user",
            "files": [],
        }
        rich = BaiYingMessage(
            role=BaiYingMessageRole.USER,
            content=MessageContent(
                text="see file",
                files=[MessageFile(fileId=7, fileUrl="https://x/f", fileType="pdf", fileName="f")],
            ),
        )
        resp = await client.send_message(
            target_agent_type="chat_agent", session_id=sid, content=rich
        )
        final = await client.wait_for_final(sid, resp.message_id)
        assert final.data["content"] == "see file"
        assert final.data["reply_data"]["files"] == ["f"]

        # a message object whose field does not fit fails the task, the field named
        bad = [{"role": "user", "content": {"text": "x", "files": [{"fileId": "seven"}]}}]
        resp = await client.send_message(
            target_agent_type="chat_agent", session_id=sid, content=bad
        )
        final = await client.wait_for_final(sid, resp.message_id)
        assert final.data["status"] == "FAILED"
        assert "fileId" in str(final.data["error"])
    finally:
        stop_process(proc)


# -- the connection ---------------------------------------------------------------------------


async def test_init_redis_is_process_wide(redis_url: str) -> None:
    first = init_redis(**connection_kwargs(redis_url))
    assert init_redis(host="elsewhere") is first
    assert get_redis() is first
    await close_redis()
    assert redis_client_module._client is None
    second = init_redis(**connection_kwargs(redis_url), decode_responses=False)
    assert second is not first
    assert isinstance(await second.echo("x"), bytes)


async def _connections_named(admin: aioredis.Redis, name: str) -> int:
    clients: Any = await admin.client_list()
    return sum(1 for c in clients if c.get("name") == name)


async def test_close_redis_closes_the_bytes_twin(
    settings: RedisSettings, redis_url: str, redis: aioredis.Redis
) -> None:
    """The twin a decoding client is read through shares its settings (here its client
    name) and is closed with it; closing the GatewayClient leaves both open."""
    name = f"byway-test-{uuid.uuid4().hex[:8]}"
    user = init_redis(**connection_kwargs(redis_url), client_name=name)
    client = GatewayClient(redis_client=user)
    assert client.redis is not user and client.registry.redis is client.redis
    assert WorkerRegistry(redis_client=user).redis is client.redis  # one twin per client
    await client.registry.list_workers()  # the twin connects
    assert await _connections_named(redis, name) >= 1
    await client.close()
    assert await user.echo("still open") == "still open"
    await close_redis()
    for _ in range(200):  # the server notices the closed sockets soon after
        if await _connections_named(redis, name) == 0:
            break
        await asyncio.sleep(0.05)
    assert await _connections_named(redis, name) == 0


async def test_bytes_client_is_used_as_is(settings: RedisSettings, redis: aioredis.Redis) -> None:
    client = GatewayClient(redis_client=redis)
    assert client.redis is redis
    await client.close()
    assert await redis.ping()  # not ours: left open


def test_constructor_conflicts(settings: RedisSettings, redis: aioredis.Redis) -> None:
    with pytest.raises(ConfigurationError, match="redis_client"):
        WorkerRegistry(redis, redis_client=redis)
    with pytest.raises(ConfigurationError, match="redis_client"):
        GatewayClient(redis, redis_client=redis)
    other = WorkerRegistry(redis, RedisSettings(namespace="elsewhere").keys)
    with pytest.raises(ConfigurationError, match="registry"):
        GatewayClient(redis_client=redis, registry=other)
    assert WorkerRegistry(redis_client=redis).keys == settings.keys  # BYWAY_NAMESPACE


# -- the Byai codec --------------------------------------------------------------------------


def test_byai_wire_shape_is_by_frameworks() -> None:
    """What by-framework's serialize_byai_content writes (dataclasses.asdict: every field)."""
    message = BaiYingMessage(
        role=BaiYingMessageRole.TOOL_CALL,
        content=MessageContent(
            text="t",
            files=[MessageFile(fileId=1, fileUrl="u", fileType="png", fileName="n")],
            resources=[Resource(resourceId="r", resourceName="rn", resourceType="doc")],
        ),
    )
    wire = serialize_byai_content(message)
    assert wire == [
        {
            "role": "tool-call",
            "content": {
                "text": "t",
                "files": [{"fileId": 1, "fileUrl": "u", "fileType": "png", "fileName": "n"}],
                "resources": [
                    {
                        "resourceId": "r",
                        "resourceName": "rn",
                        "resourceType": "doc",
                        "id": "",
                        "path": "",
                        "resourceDesc": "",
                        "resourceMetaData": {},
                    }
                ],
            },
        }
    ]
    assert deserialize_byai_content(wire) == message
    plain = BaiYingMessage(role="user", content="Hello")  # type: ignore[arg-type]
    assert serialize_byai_content([plain, plain]) == [{"role": "user", "content": "Hello"}] * 2
    assert (
        deserialize_byai_content(serialize_byai_content([plain, plain]))
        == [BaiYingMessage(role=BaiYingMessageRole.USER, content="Hello")] * 2
    )
    codec = ByaiContentCodec()
    assert codec.deserialize(codec.serialize("text")) == "text"
    other = [{"type": "text", "text": "not a message"}]
    assert codec.deserialize(other) is other


def test_byai_decode_names_the_field() -> None:
    with pytest.raises(ProtocolError, match="role"):
        deserialize_byai_content([{"role": "wizard", "content": "x"}])
    with pytest.raises(ProtocolError, match=r"fileId"):
        deserialize_byai_content(
            [{"role": "user", "content": {"text": "x", "files": [{"fileId": "1"}]}}]
        )
    # an unknown key is data, never a class to build: ignored, as a text-less content
    # (by-framework's decoder defaults text to "")
    planted = deserialize_byai_content([{"role": "user", "content": {"__class__": "os.system"}}])
    assert planted.content == MessageContent(text="")
    with pytest.raises(ProtocolError, match=r"content"):
        deserialize_byai_content([{"role": "user", "content": None}])


def test_byai_worker_prepares_commands() -> None:
    from byway import AskAgentCommand, MessageHeader

    class W(ByaiWorker):
        def get_agent_types(self) -> list[str]:
            return ["w"]

    header = MessageHeader(message_id="m", session_id="s", trace_id="t")
    wire = AskAgentCommand(header=header, content=[{"role": "system", "content": "be brief"}])
    prepared = W().prepare_command_for_processing(wire)
    assert isinstance(prepared, ByaiAskAgentCommand)
    assert prepared.content == BaiYingMessage(role=BaiYingMessageRole.SYSTEM, content="be brief")
    assert prepared.to_command().content == wire.content
    assert ByaiAskAgentCommand.from_dict(prepared.to_dict()) == prepared
    with pytest.raises(ProtocolError, match="role"):
        ByaiAskAgentCommand.from_dict(
            {**prepared.to_dict(), "body": {"content": [{"role": 1, "content": "x"}]}}
        )
