"""Service discovery against a real Redis and real HTTP servers on loopback.

Each server is a small asyncio HTTP/1.1 server in the test's loop that closes every
connection after its answer (so a stopped server refuses the next request instead of a
pooled connection failing later) and counts its hits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from byway import (
    ConfigurationError,
    DiscoveryClient,
    DiscoveryHttpClient,
    DiscoveryHttpClientError,
    HttpRequestError,
    Keys,
    ProtocolError,
    RedisSettings,
    RetryConfig,
    ServiceInstance,
    ServiceRegistry,
    close_redis,
    init_redis,
)

httpx = pytest.importorskip("httpx")

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]

NO_WAIT = RetryConfig(initial_delay=0, max_delay=0)


class Server:
    """An HTTP server on 127.0.0.1 that answers ``{"name", "path"}`` with ``status``."""

    def __init__(self, name: str, status: int = 200) -> None:
        self.name, self.status, self.hits = name, status, 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next(
                (
                    int(v)
                    for k, _, v in (x.partition(":") for x in lines[1:])
                    if k.lower() == "content-length"
                ),
                0,
            )
            body = await reader.readexactly(length) if length else b""
            self.hits += 1
            method, target, _ = lines[0].split(" ", 2)
            payload = json.dumps(
                {"name": self.name, "method": method, "path": target, "body": body.decode()}
            ).encode()
            writer.write(
                f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    started: list[Server] = []

    async def start(name: str, status: int = 200) -> Server:
        server = await Server(name, status).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def registries(
    redis: aioredis.Redis, settings: RedisSettings
) -> AsyncIterator[Callable[[], ServiceRegistry]]:
    made: list[ServiceRegistry] = []

    def make() -> ServiceRegistry:
        made.append(ServiceRegistry(redis, settings=settings))
        return made[-1]

    yield make
    for registry in made:
        await registry.close()


@pytest.fixture
async def discovery(
    redis: aioredis.Redis, settings: RedisSettings
) -> AsyncIterator[DiscoveryClient]:
    async with DiscoveryClient(
        redis, cache_interval=0, settings=settings, failure_cooldown=600
    ) as dc:
        yield dc


async def until(
    condition: Callable[[], Awaitable[bool]], what: str, deadline_s: float = 15
) -> None:
    """Poll ``condition`` until it holds (a deadline, not a timed assertion)."""
    end = time.monotonic() + deadline_s
    while not await condition():
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


async def two_instances(servers: Any, registries: Any, service: str) -> tuple[Server, Server]:
    a, b = await servers("a"), await servers("b")
    for server in (a, b):
        await registries().register(
            service, host="127.0.0.1", port=server.port, heartbeat_interval=30
        )
    return a, b


async def test_round_robin_alternates_between_two_instances(
    servers: Any, registries: Any, discovery: DiscoveryClient
) -> None:
    a, b = await two_instances(servers, registries, "search")
    async with DiscoveryHttpClient(discovery, retry_config=NO_WAIT) as http:
        answers = [await http.get("search", "/q", params={"x": "1"}) for _ in range(6)]
    names = [r.data["name"] for r in answers]
    assert (a.hits, b.hits) == (3, 3)
    assert names[0::2] == [names[0]] * 3 and names[1::2] == [names[1]] * 3
    assert names[0] != names[1]
    assert all(isinstance(r, httpx.Response) and r.status_code == 200 for r in answers)
    assert answers[0].json()["path"] == "/q?x=1"


async def test_a_stopped_instance_is_skipped_after_the_threshold(
    servers: Any, registries: Any, redis: aioredis.Redis, settings: RedisSettings
) -> None:
    a, b = await two_instances(servers, registries, "search")
    await b.stop()
    async with (
        DiscoveryClient(
            redis, 0, settings=settings, failure_threshold=2, failure_cooldown=600
        ) as dc,
        DiscoveryHttpClient(dc, retry_config=NO_WAIT) as http,
    ):
        answers = [await http.post("search", "/work", json={"n": n}) for n in range(10)]
        [dead] = [i for i in await dc.get_instances("search") if i.port == b.port]
        # two refused connections took it out of rotation: it was not tried again
        assert dc.failures("search", dead.id) == 2 and dc.is_down("search", dead.id)
    assert [r.data["name"] for r in answers] == ["a"] * 10
    assert a.hits == 10


async def test_a_failing_instance_leaves_the_rotation_and_a_request_goes_to_the_next(
    servers: Any, registries: Any, redis: aioredis.Redis, settings: RedisSettings
) -> None:
    good, bad = await servers("good"), await servers("bad", status=503)
    for server in (good, bad):
        await registries().register("api", host="127.0.0.1", port=server.port)
    async with (
        DiscoveryClient(
            redis, 0, settings=settings, failure_threshold=3, failure_cooldown=600
        ) as dc,
        DiscoveryHttpClient(dc, retry_config=NO_WAIT) as http,
    ):
        answers = [await http.get("api", "/") for _ in range(12)]
    assert {r.data["name"] for r in answers} == {"good"}
    assert (bad.hits, good.hits) == (3, 12)


async def test_every_instance_failing_raises_after_the_bounded_attempts(
    servers: Any, registries: Any, discovery: DiscoveryClient
) -> None:
    bad = await servers("bad", status=500)
    await registries().register("api", host="127.0.0.1", port=bad.port)
    async with DiscoveryHttpClient(discovery, retry_config=NO_WAIT) as http:
        with pytest.raises(DiscoveryHttpClientError) as caught:
            await http.get("api", "/x")
    assert caught.value.status_code == 500 and '"bad"' in (caught.value.response_body or "")
    assert bad.hits == 3


async def test_a_post_that_may_have_arrived_is_not_sent_again(
    registries: Any, discovery: DiscoveryClient
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()  # read the request, then closed without an answer

    hits: list[bytes] = []
    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await registries().register("pay", host="127.0.0.1", port=port)
    try:
        async with DiscoveryHttpClient(discovery, retry_config=NO_WAIT) as http:
            with pytest.raises(HttpRequestError):
                await http.post("pay", "/charge", json={"eur": 5})
            assert len(hits) == 1
            with pytest.raises(DiscoveryHttpClientError):
                await http.get("pay", "/status")  # idempotent: tried three times
            assert len(hits) == 4
    finally:
        server.close()
        await server.wait_closed()


async def test_a_lapsed_lease_removes_the_instance_and_a_heartbeat_keeps_one(
    servers: Any,
    registries: Any,
    discovery: DiscoveryClient,
    redis: aioredis.Redis,
    settings: RedisSettings,
) -> None:
    live, dead = await servers("live"), await servers("dead")
    gone = registries()
    await gone.register_only("svc", host="127.0.0.1", port=dead.port, ttl=0.3)  # never renewed
    assert gone.instance is not None
    dead_id = gone.instance.id
    assert [i.port for i in await discovery.get_instances("svc")] == [dead.port]

    async def lapsed() -> bool:
        return await discovery.get_instances("svc") == []

    await until(lapsed, "the unrenewed instance drops out")
    # readers judge the lease themselves: nobody has removed the entry yet
    assert await redis.hexists(settings.keys.sd_instances("svc"), dead_id)

    await registries().register(
        "svc", host="127.0.0.1", port=live.port, heartbeat_interval=0.2, ttl=10
    )

    async def pruned() -> bool:  # the live one's heartbeats remove it from Redis
        return not await redis.hexists(settings.keys.sd_instances("svc"), dead_id)

    await until(pruned, "the lapsed entry is removed")
    assert await redis.zscore(settings.keys.sd_active("svc"), dead_id) is None
    assert not await redis.hexists(settings.keys.sd_leases("svc"), dead_id)
    assert [i.port for i in await discovery.get_instances("svc")] == [live.port]


async def test_a_request_tries_every_instance_before_one_again(
    servers: Any, registries: Any, redis: aioredis.Redis, settings: RedisSettings
) -> None:
    good, bad = await servers("good"), await servers("bad", status=500)
    for server in (good, bad):
        await registries().register("api", host="127.0.0.1", port=server.port)
    retry = RetryConfig(max_attempts=2, initial_delay=0)
    async with (
        DiscoveryClient(redis, 0, settings=settings, failure_threshold=1000) as dc,
        DiscoveryHttpClient(dc, retry_config=retry, strategy="random") as http,
    ):
        answers = [await http.get("api", "/") for _ in range(20)]
    assert {r.data["name"] for r in answers} == {"good"}  # never the bad one twice


async def test_deregister_removes_the_instance(
    servers: Any,
    registries: Any,
    discovery: DiscoveryClient,
    redis: aioredis.Redis,
    settings: RedisSettings,
) -> None:
    server = await servers("only")
    registry = registries()
    await registry.register("svc", host="127.0.0.1", port=server.port)
    assert len(await discovery.get_instances("svc")) == 1
    await registry.deregister()
    assert registry.instance is None
    assert await discovery.get_instances("svc") == []
    assert await redis.hlen(settings.keys.sd_instances("svc")) == 0
    assert await redis.zcard(settings.keys.sd_active("svc")) == 0
    async with DiscoveryHttpClient(discovery) as http:
        with pytest.raises(
            DiscoveryHttpClientError, match="No available instances for service: svc"
        ):
            await http.get("svc", "/")
    await registry.register("svc", host="127.0.0.1", port=server.port)  # usable again
    assert len(await discovery.get_instances("svc")) == 1


async def test_hostile_entries_are_skipped_and_logged_once(
    servers: Any,
    registries: Any,
    discovery: DiscoveryClient,
    redis: aioredis.Redis,
    settings: RedisSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real, planted = await servers("real"), await servers("planted")
    await registries().register("svc", host="127.0.0.1", port=real.port)
    k = settings.keys
    good = {"id": "svc:bf", "host": "127.0.0.1", "port": planted.port}  # as by-framework writes
    bad: dict[str, bytes] = {
        "svc:json": b"{not json",
        "svc:list": b"[1, 2]",
        "svc:port-str": _entry("svc:port-str", port="80"),
        "svc:port-big": _entry("svc:port-big", port=70000),
        "svc:port-bool": _entry("svc:port-bool", port=True),
        "svc:port-float": _entry("svc:port-float", port=80.5),
        "svc:file": _entry("svc:file", protocol="file"),
        "svc:js": _entry("svc:js", protocol="javascript"),
        "svc:host-path": _entry("svc:host-path", host="evil.example/x"),
        "svc:host-at": _entry("svc:host-at", host="user@evil.example"),
        "svc:host-space": _entry("svc:host-space", host="a b"),
        "svc:host-type": _entry("svc:host-type", host=["x"]),
        "svc:prefix": _entry("svc:prefix", path_prefix="/../../admin"),
        "svc:meta": _entry("svc:meta", metadata=[1]),
        "svc:other-id": _entry("svc:someone-else"),
        "svc:huge": _entry("svc:huge", metadata={"x": "y" * 100_000}),
        "svc:utf8": b'{"id": "svc:utf8", "host": "\xff", "port": 1}',
        # deeper than the decoder recurses, in 30 kB
        "svc:deep": b'{"id":"svc:deep","host":"h","port":1,"metadata":'
        + b'{"a":' * 5000
        + b"1"
        + b"}" * 5001,
    }
    bad["svc:" + "x" * 400] = _entry("svc:" + "x" * 400)  # an id cut short on reading
    planted_entries: dict[Any, Any] = {**bad, "svc:bf": json.dumps(good)}
    await redis.hset(k.sd_instances("svc"), mapping=planted_entries)
    now = int(time.time() * 1000)
    await redis.zadd(k.sd_active("svc"), {i: now for i in [*bad, "svc:bf", "svc:no-details"]})
    await redis.hset(k.sd_leases("svc"), mapping={"svc:bf": "x" * 50})

    with caplog.at_level(logging.WARNING, logger="byway.discovery"):
        for _ in range(3):
            found = await discovery.get_instances("svc", force_refresh=True)
    assert sorted(i.port for i in found) == sorted([real.port, planted.port])
    skipped = [r.getMessage() for r in caplog.records if "skipping entry" in r.getMessage()]
    assert len(skipped) == len(bad)  # each once over three reads; no details: no entry
    assert any("port" in m for m in skipped) and any("protocol" in m for m in skipped)
    async with DiscoveryHttpClient(discovery, retry_config=NO_WAIT) as http:
        names = {(await http.get("svc", "/")).data["name"] for _ in range(4)}
    assert names == {"real", "planted"}


def _entry(instance_id: str, **fields: Any) -> bytes:
    return json.dumps({"id": instance_id, "host": "127.0.0.1", "port": 1, **fields}).encode()


async def test_a_heartbeat_survives_a_planted_score_and_lease(
    registries: Any, redis: aioredis.Redis, settings: RedisSettings
) -> None:
    k = settings.keys
    await redis.zadd(k.sd_active("svc"), {"svc:neg": float("-inf")})
    await redis.hset(k.sd_leases("svc"), mapping={"svc:neg": "1"})
    registry = registries()
    await registry.register("svc", host="127.0.0.1", port=1)
    assert await redis.zscore(k.sd_active("svc"), "svc:neg") is None  # pruned, no error


async def test_heartbeats_planted_in_the_future_neither_crowd_out_nor_outlive_real_ones(
    registries: Any, discovery: DiscoveryClient, redis: aioredis.Redis, settings: RedisSettings
) -> None:
    k = settings.keys
    registry = registries()
    await registry.register("svc", host="127.0.0.1", port=1)
    future = (time.time() + 10**6) * 1000
    junk = {f"svc:evil{i}": _entry(f"svc:evil{i}") for i in range(300)}  # past the read window
    await redis.hset(k.sd_instances("svc"), mapping=junk)  # type: ignore[arg-type]
    await redis.zadd(k.sd_active("svc"), dict.fromkeys(junk, future))
    found = await discovery.get_instances("svc", force_refresh=True)
    assert [i.id for i in found] == [registry.instance.id]
    await registry.heartbeat()  # prunes what no heartbeat stamped, 100 a call
    assert await redis.zcard(k.sd_active("svc")) == 201
    for _ in range(2):
        await registry.heartbeat()
    assert await redis.zcard(k.sd_active("svc")) == 1
    assert await redis.hlen(k.sd_instances("svc")) == 1


async def test_an_instance_is_refused_when_a_reader_would_refuse_it(registries: Any) -> None:
    registry = registries()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"port": 70000}, "port"),
        ({"protocol": "ftp"}, "protocol"),
        ({"host": "a/b"}, "host"),
        ({"metadata": {"x": object()}}, "metadata"),
        ({"heartbeat_interval": 5, "ttl": 2}, "ttl"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ConfigurationError, match=field):
            await registry.register("svc", **{"host": "127.0.0.1", "port": 1, **kwargs})
    with pytest.raises(ConfigurationError, match="service_name"):
        await registry.register("bad {name}", host="127.0.0.1", port=1)


def test_a_path_cannot_name_another_host_or_scheme() -> None:
    from byway.discovery_http import _url

    instance = ServiceInstance("svc:1", "::1", 8080, "https", "/api/")
    assert str(_url(instance, "/v1/x?q=1")) == "https://[::1]:8080/api/v1/x?q=1"
    for path in ("http://evil.example/x", "//evil.example/x", "file:///etc/passwd"):
        with pytest.raises(ConfigurationError, match="path"):
            _url(instance, path)


def test_an_instance_decodes_only_from_valid_json() -> None:
    instance = ServiceInstance.from_json(b'{"id":"s:1","host":"h.example","port":80,"x":1}')
    assert (instance.protocol, instance.weight, instance.metadata) == ("http", 1, {})
    assert json.loads(instance.to_json()) == {
        "id": "s:1",
        "host": "h.example",
        "port": 80,
        "protocol": "http",
        "path_prefix": None,
        "weight": 1,
        "metadata": {},
    }
    with pytest.raises(ProtocolError, match="port"):
        ServiceInstance.from_json(b'{"id":"s:1","host":"h","port":"80"}')
    deep = b'{"id":"s:1","host":"h","port":1,"metadata":' + b'{"a":' * 5000 + b"1" + b"}" * 5001
    with pytest.raises(ProtocolError, match="nested too deeply"):
        ServiceInstance.from_json(deep)


def test_keys_keep_by_frameworks_layout_and_tag_the_service_under_v2() -> None:
    v1, v2 = Keys(), Keys(schema="v2")
    assert v1.sd_active("svc") == "byai_gateway:sd:active:svc"
    assert v1.sd_instances("svc") == "byai_gateway:sd:instances:svc"
    assert v1.sd_services() == "byai_gateway:sd:services"
    assert {v2.sd_active("svc"), v2.sd_instances("svc"), v2.sd_leases("svc")} == {
        "byai_gateway:v2:sd:{svc}:active",
        "byai_gateway:v2:sd:{svc}:instances",
        "byai_gateway:v2:sd:{svc}:leases",
    }


async def test_discover_strategies_and_exclusion(
    registries: Any, discovery: DiscoveryClient
) -> None:
    for port in (1001, 1002, 1003):
        await registries().register("svc", host="127.0.0.1", port=port)
    picks = [(await discovery.discover("svc", "round-robin")) for _ in range(6)]
    ports = [p.port for p in picks if p]
    assert sorted(ports[:3]) == [1001, 1002, 1003] and ports[3:] == ports[:3]  # a cycle
    first = await discovery.discover("svc", exclude={p.id for p in picks[:2] if p})
    assert first is not None and first.port == ports[2]
    assert await discovery.discover("nobody") is None
    with pytest.raises(ConfigurationError, match="strategy"):
        await discovery.discover("svc", "weighted")


def test_the_http_client_without_httpx_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['httpx'] = None\n"
        "import byway\n"
        "from byway import DiscoveryClient, DiscoveryHttpClient, RedisSettings\n"
        "dc = DiscoveryClient(settings=RedisSettings(url='redis://127.0.0.1:1'))\n"
        "try:\n"
        "    DiscoveryHttpClient(dc)\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert 'pip install "byway[discovery]"' in done.stdout


async def test_a_read_failure_keeps_the_last_list(
    registries: Any, redis: aioredis.Redis, settings: RedisSettings
) -> None:
    await registries().register("svc", host="127.0.0.1", port=1)
    broken = RedisSettings(url="redis://127.0.0.1:1", namespace=settings.namespace).client()
    try:
        async with DiscoveryClient(redis, 0, settings=settings) as dc:
            assert len(await dc.get_instances("svc")) == 1
            dc.redis = broken
            assert len(await dc.get_instances("svc")) == 1  # served from the last read
            with pytest.raises(Exception):  # noqa: B017 - never read: nothing to serve
                await dc.get_instances("other")
    finally:
        await broken.aclose()


@pytest.mark.standalone
async def test_by_frameworks_global_client_is_used_without_arguments(
    servers: Any, redis: aioredis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``init_redis(...)`` then ``ServiceRegistry()``: the process's client, which decodes
    replies to str as by-framework's does (read through its bytes twin)."""
    server = await servers("global")
    monkeypatch.setenv("BYWAY_NAMESPACE", namespace)
    args = dict(redis.connection_pool.connection_kwargs)
    where = {"unix_socket_path": args["path"]} if "path" in args else {"port": args["port"]}
    init_redis(
        host=args.get("host", "localhost"),
        db=args.get("db", 0),
        password=args.get("password"),
        username=args.get("username"),
        **where,
    )
    try:
        registry = ServiceRegistry()
        await registry.register("svc", host="127.0.0.1", port=server.port)
        async with DiscoveryHttpClient(DiscoveryClient()) as http:
            assert (await http.get("svc", "/")).data["name"] == "global"
        await registry.unregister()
        assert await redis.exists(Keys(namespace).sd_services())
    finally:
        await close_redis()


async def test_an_instance_without_a_port_gets_no_request(
    servers: Any, registries: Any, discovery: DiscoveryClient
) -> None:
    await registries().register("svc", host="127.0.0.1")  # port 0: no listening port
    async with DiscoveryHttpClient(discovery, retry_config=NO_WAIT) as http:
        with pytest.raises(DiscoveryHttpClientError, match="No available instances"):
            await http.get("svc", "/")
        server = await servers("real")
        await registries().register("svc", host="127.0.0.1", port=server.port)
        names = {(await http.get("svc", "/")).data["name"] for _ in range(4)}
    assert names == {"real"} and server.hits == 4
