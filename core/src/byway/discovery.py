"""Service discovery on the workers' Redis: instances register under a lease that their
heartbeat renews, and clients find them (:class:`DiscoveryClient`, in
:mod:`byway.discovery_client`).

A service instance is (service name, instance id, host, port, protocol, path prefix,
weight, metadata) plus its health: its last heartbeat and its lease. The layout is
by-framework's, so its services and Byway's find each other: per service a sorted set
of instance ids scored by their last heartbeat (ms) and a hash of instance JSON, plus a
hash of leases that by-framework does not have (:mod:`byway.keys`, ``sd_*``). Every
heartbeat is one script (:mod:`byway.store.discovery`) that writes the instance whole
and removes the service's entries whose lease lapsed, so a dead instance disappears
even when nobody deregisters it.

Everything read back is validated (:meth:`ServiceInstance.from_json`): anyone who can
write the namespace can plant entries, and a client only follows ``http``/``https``
URLs to a well-formed host and port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Annotated, Any

import msgspec
import redis.asyncio as aioredis

from byway._log import get_logger
from byway.errors import ConfigurationError, ProtocolError
from byway.keys import Keys
from byway.redis_client import bytes_client, get_redis
from byway.settings import RedisSettings, is_cluster
from byway.store.discovery import HeartbeatArgs, heartbeat

__all__ = [
    "DEFAULT_HEALTH_THRESHOLD_MS",
    "DEFAULT_HEARTBEAT_INTERVAL_SECONDS",
    "MAX_INSTANCE_BYTES",
    "NO_HEALTH_CHECK",
    "NO_HEARTBEAT",
    "ServiceInstance",
    "ServiceRegistry",
    "get_local_ip",
    "resolve_redis",
]

log = get_logger("byway.discovery")

#: seconds between heartbeats (by-framework's default)
DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 10
#: a reader skips an instance whose last heartbeat is older than this (ms)
DEFAULT_HEALTH_THRESHOLD_MS = 30_000
#: ``health_threshold_ms`` that turns the reader's heartbeat-age check off
NO_HEALTH_CHECK = -1
#: ``heartbeat_interval`` that registers without a heartbeat loop
NO_HEARTBEAT = 0
#: an instance's JSON longer than this is neither written nor read
MAX_INSTANCE_BYTES = 65_536

_SERVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,199}$")
_INSTANCE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,255}$")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")
_PATH_RE = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,512}$")
_PROTOCOLS = ("http", "https")


def check_service_name(name: object, what: str = "service_name") -> str:
    """``name`` if it is a service name Byway accepts (no braces, spaces or controls)."""
    if not isinstance(name, str) or not _SERVICE_RE.match(name):
        raise ConfigurationError(
            f"{what}: expected 1-200 characters of [A-Za-z0-9_.:@/-], got {name!r:.80}"
        )
    return name


def _check_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME_RE.match(host):
        raise ValueError(f"host: expected a hostname or an IP address, got {host!r:.80}")
    return host


def _check_path_prefix(prefix: str | None) -> str | None:
    if prefix is None or prefix == "":
        return None
    if not _PATH_RE.match(prefix) or ".." in prefix.split("/"):
        raise ValueError(f"path_prefix: expected a URL path, got {prefix!r:.80}")
    return prefix


class _WireInstance(msgspec.Struct):
    """An instance as JSON holds it (by-framework's shape; unknown fields tolerated)."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    host: Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)]
    protocol: str | None = "http"
    path_prefix: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    weight: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 1
    metadata: dict[str, Any] = {}


_decoder = msgspec.json.Decoder(_WireInstance)


@dataclass
class ServiceInstance:
    """One registered instance of a service (by-framework's fields, in its order).

    ``last_heartbeat`` is Redis's clock (ms) at its last heartbeat; ``lease_ms`` how long
    after it the instance stays live (0: no lease, the reader's threshold decides);
    neither is part of its JSON."""

    id: str
    host: str
    port: int
    protocol: str = "http"
    path_prefix: str | None = None
    weight: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)
    last_heartbeat: int = field(default=0, repr=False)
    lease_ms: int = field(default=0, repr=False)

    @property
    def base_url(self) -> str:
        """``protocol://host:port[/prefix]`` (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        prefix = (self.path_prefix or "").strip("/")
        return f"{self.protocol}://{host}:{self.port}" + (f"/{prefix}" if prefix else "")

    def to_json(self) -> str:
        """The instance as by-framework writes it (no heartbeat, no lease)."""
        wire = _WireInstance(
            self.id,
            self.host,
            self.port,
            self.protocol,
            self.path_prefix,
            self.weight,
            self.metadata,
        )
        return msgspec.json.encode(wire).decode()

    @classmethod
    def from_json(cls, data: str | bytes) -> ServiceInstance:
        """Decode and validate one instance; :class:`ProtocolError` names the bad field."""
        try:
            if len(data) > MAX_INSTANCE_BYTES:
                raise ValueError(f"instance: {len(data)} bytes (at most {MAX_INSTANCE_BYTES})")
            wire = _decoder.decode(data)
            if not _INSTANCE_ID_RE.match(wire.id):
                raise ValueError(f"id: expected [A-Za-z0-9_.:@/-] characters, got {wire.id!r:.80}")
            protocol = (wire.protocol or "http").lower()
            if protocol not in _PROTOCOLS:
                raise ValueError(f"protocol: expected http or https, got {wire.protocol!r:.40}")
            host = _check_host(wire.host)
            prefix = _check_path_prefix(wire.path_prefix)
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
            raise ProtocolError(f"service instance: {exc}") from None
        except RecursionError:  # nested deeper than the decoder goes: a planted entry
            raise ProtocolError("service instance: nested too deeply") from None
        return cls(wire.id, host, wire.port, protocol, prefix, wire.weight, wire.metadata)


def get_local_ip(target_host: str = "8.8.8.8", target_port: int = 80) -> str:
    """This machine's address on the route to ``target_host`` (no packet is sent: a UDP
    socket is connected, then asked its own address); for a loopback target, the route
    to a public address. Falls back to the hostname's address, then 127.0.0.1."""
    if target_host in ("127.0.0.1", "localhost", "::1"):
        target_host, target_port = "8.8.8.8", 80
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((target_host, target_port))
        return str(s.getsockname()[0])
    with contextlib.suppress(OSError):
        return socket.gethostbyname(socket.gethostname())
    return "127.0.0.1"


def resolve_redis(
    redis_client: aioredis.Redis | None, settings: RedisSettings | None, keys: Keys | None
) -> tuple[aioredis.Redis, bool, Keys]:
    """The client a discovery object reads through, whether it opened it, and its key
    space. The client: ``redis_client`` (one that decodes replies is read through its
    bytes-mode twin), else a new one from ``settings``, else the process's
    (:func:`~byway.redis_client.get_redis`, as by-framework). The keys: ``keys``, else the
    settings' (default: the environment's namespace), schema v2 on a cluster client."""
    owned = redis_client is None and settings is not None
    if redis_client is not None:
        redis = bytes_client(redis_client)
    elif settings is not None:
        redis = settings.client()
    else:
        redis = bytes_client(get_redis())
    chosen = keys or (settings or RedisSettings.from_env()).keys
    if is_cluster(redis) and chosen.schema == "v1":
        chosen = Keys(chosen.namespace, "v2")
    return redis, owned, chosen


class ServiceRegistry:
    """Registers one instance of a service, keeps it live with a heartbeat, deregisters it.

    >>> registry = ServiceRegistry(redis)                       # doctest: +SKIP
    >>> await registry.register("search", host="10.0.0.5", port=8080)  # doctest: +SKIP

    Without ``redis_client`` it opens (and closes) a client from ``settings``; with
    neither it uses the process's client (``init_redis``/``get_redis``), as by-framework.
    Use it as an async context manager to deregister on exit.
    """

    def __init__(
        self,
        redis_client: aioredis.Redis | None = None,
        *,
        settings: RedisSettings | None = None,
        keys: Keys | None = None,
    ) -> None:
        self.redis, self._owns_redis, self.keys = resolve_redis(redis_client, settings, keys)
        self._instance: ServiceInstance | None = None
        self._service_name: str | None = None
        self._payload = b""
        self._heartbeat_task: asyncio.Task[None] | None = None

    @property
    def instance(self) -> ServiceInstance | None:
        """The registered instance (None before :meth:`register`, after :meth:`unregister`)."""
        return self._instance

    @property
    def service_name(self) -> str | None:
        return self._service_name

    async def register(
        self,
        service_name: str,
        host: str | None = None,
        port: int = 0,
        weight: int = 1,
        metadata: dict[str, Any] | None = None,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
        protocol: str = "http",
        path_prefix: str | None = None,
        *,
        ttl: float | None = None,
    ) -> None:
        """Register this instance and renew it every ``heartbeat_interval`` seconds.

        ``host=None`` detects this machine's address on the route to Redis. ``ttl``
        (seconds, default three heartbeats) is the lease: missed heartbeats for that long
        and readers drop it, the next heartbeat of any instance of the service removes
        it. ``heartbeat_interval=0`` registers once: no lease unless ``ttl`` is given."""
        if self._instance is not None:
            raise ConfigurationError(
                f"register: this ServiceRegistry holds {self._instance.id!r}; unregister() it first"
            )
        check_service_name(service_name)
        lease_ms = _lease_ms(heartbeat_interval, ttl)
        if host is None:
            host = await asyncio.to_thread(get_local_ip, *self._redis_address())
        instance = ServiceInstance(
            id=f"{service_name}:{uuid.uuid4().hex[:12]}",
            host=host,
            port=port,
            protocol=protocol or "http",
            path_prefix=path_prefix,
            weight=weight,
            metadata=dict(metadata or {}),
            lease_ms=lease_ms,
        )
        self._payload = _encode_checked(instance)
        self._instance, self._service_name = instance, service_name
        try:
            await self.heartbeat()
            await self.redis.sadd(self.keys.sd_services(), service_name)
        except BaseException:
            self._instance = self._service_name = None  # not registered: register() again
            raise
        if heartbeat_interval > NO_HEARTBEAT:
            self._heartbeat_task = asyncio.create_task(
                self._heartbeat_loop(float(heartbeat_interval)),
                name=f"byway-sd-heartbeat-{instance.id}",
            )

    async def register_only(
        self,
        service_name: str,
        host: str | None = None,
        port: int = 0,
        weight: int = 1,
        metadata: dict[str, Any] | None = None,
        protocol: str = "http",
        path_prefix: str | None = None,
        *,
        ttl: float | None = None,
    ) -> None:
        """Register without a heartbeat loop (call :meth:`heartbeat` yourself, or give
        no ``ttl`` for an entry that stays until :meth:`unregister`)."""
        await self.register(
            service_name,
            host,
            port,
            weight,
            metadata,
            NO_HEARTBEAT,
            protocol,
            path_prefix,
            ttl=ttl,
        )

    async def heartbeat(self) -> None:
        """Renew the lease now (and restore the entry whole if it had lapsed)."""
        if self._instance is None or self._service_name is None:
            raise ConfigurationError("heartbeat: nothing registered; call register() first")
        self._instance.last_heartbeat = await heartbeat(
            self.redis,
            HeartbeatArgs(
                keyspace=self.keys,
                service=self._service_name,
                instance_id=self._instance.id,
                instance=self._payload,
                lease_ms=self._instance.lease_ms,
            ),
        )

    async def unregister(self) -> None:
        """Stop the heartbeat and remove the instance (no-op when nothing is registered)."""
        task, self._heartbeat_task = self._heartbeat_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        instance, service = self._instance, self._service_name
        self._instance = self._service_name = None
        if instance is None or service is None:
            return
        # one round trip; the id leaves the active set first, so a reader in between
        # sees no instance rather than half of one (a cluster runs no MULTI here)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self.keys.sd_active(service), instance.id)
            pipe.hdel(self.keys.sd_instances(service), instance.id)
            pipe.hdel(self.keys.sd_leases(service), instance.id)
            await pipe.execute()

    deregister = unregister

    async def close(self) -> None:
        """Unregister, then close the Redis client if this registry opened it."""
        try:
            await self.unregister()
        finally:
            if self._owns_redis:
                await self.redis.aclose()

    async def __aenter__(self) -> ServiceRegistry:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _heartbeat_loop(self, interval: float) -> None:
        failing = False
        delay = interval
        while True:
            await asyncio.sleep(delay)
            try:
                await self.heartbeat()
            except Exception as exc:  # Redis away: retry soon, warn once per outage
                if not failing:
                    log.warning("service heartbeat failed, retrying: %s", exc)
                failing, delay = True, min(interval, 1.0)
            else:
                if failing:
                    log.info("service heartbeat renewed again")
                failing, delay = False, interval

    def _redis_address(self) -> tuple[str, int]:
        kwargs = getattr(getattr(self.redis, "connection_pool", None), "connection_kwargs", {})
        host, port = kwargs.get("host"), kwargs.get("port")
        if isinstance(host, str) and isinstance(port, int):
            return host, port
        return "8.8.8.8", 80


def _lease_ms(heartbeat_interval: float, ttl: float | None) -> int:
    if isinstance(heartbeat_interval, bool) or heartbeat_interval < 0:
        raise ConfigurationError(
            f"heartbeat_interval: expected >= 0 seconds, got {heartbeat_interval!r}"
        )
    if ttl is None:
        return int(heartbeat_interval * 3 * 1000)
    if ttl <= 0 or ttl <= heartbeat_interval:
        raise ConfigurationError(
            f"ttl: expected more seconds than heartbeat_interval ({heartbeat_interval}), got {ttl!r}"
        )
    return max(1, int(ttl * 1000))


def _encode_checked(instance: ServiceInstance) -> bytes:
    """The instance's JSON, refused (naming the field) if a reader would refuse it."""
    try:
        payload = instance.to_json().encode()
    except (TypeError, msgspec.EncodeError) as exc:
        raise ConfigurationError(f"metadata: not JSON-serialisable ({exc})") from None
    try:
        ServiceInstance.from_json(payload)
    except ProtocolError as exc:
        raise ConfigurationError(str(exc).removeprefix("service instance: ")) from None
    return payload
