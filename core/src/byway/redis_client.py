"""A process-wide Redis client as by-framework has it, and the bytes-mode twin Byway reads
through.

::

    redis = init_redis(host="localhost", port=6379)      # decode_responses=True, as there
    client = GatewayClient(redis_client=redis, registry=WorkerRegistry(redis_client=redis))
    ...
    await close_redis()

``init_redis`` keeps one client per process (a second call returns the first until
``close_redis``); ``get_redis`` returns it, creating one with the defaults if none was.
Code that owns its connections should prefer ``RedisSettings.client()`` or
``GatewayClient.from_url``, which need no global.

Byway's client, registry and scripts read replies as bytes. Given a client that decodes
replies to ``str`` (``decode_responses=True``, by-framework's default), they use
:func:`bytes_client`: a twin with the same connection settings (host, credentials, TLS,
timeouts, pool size) that leaves replies as bytes. One twin is kept per decoding client and
lives as long as it: ``close_redis()`` closes the global client's twin too, and
:func:`close_twin` closes the twin of a client you made yourself. Closing a
``GatewayClient`` leaves the twin open, since other clients and registries may share it.
"""

from __future__ import annotations

import weakref
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio import Redis as Redis

from byway.errors import ConfigurationError
from byway.settings import is_cluster

__all__ = ["Redis", "bytes_client", "close_redis", "close_twin", "get_redis", "init_redis"]

_client: aioredis.Redis | None = None
#: decoding client -> its bytes-mode twin (dropped with the client)
_twins: weakref.WeakKeyDictionary[aioredis.Redis, aioredis.Redis] = weakref.WeakKeyDictionary()

#: what a pool adds to its connection arguments itself (each new pool makes its own)
_POOL_INTERNALS = frozenset(
    {
        "himport_registry",
        "maint_notifications_pool_handler",
        "orig_host_address",
        "orig_socket_timeout",
        "orig_socket_connect_timeout",
    }
)


def init_redis(
    host: str = "localhost",
    port: int = 6379,
    db: int = 0,
    password: str | None = None,
    username: str | None = None,
    decode_responses: bool = True,
    max_connections: int | None = None,
    **kwargs: Any,
) -> aioredis.Redis:
    """The process's Redis client, created with these arguments on the first call (the
    others go to :class:`redis.asyncio.Redis`: ``ssl=True``, ``unix_socket_path=...``).
    Later calls return the same client until :func:`close_redis`."""
    global _client
    if _client is None:
        if max_connections is not None:
            kwargs["max_connections"] = max_connections
        try:
            _client = aioredis.Redis(
                host=host,
                port=port,
                db=db,
                password=password,
                username=username,
                decode_responses=decode_responses,
                **kwargs,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"init_redis: {exc}") from None
    return _client


def get_redis() -> aioredis.Redis:
    """The process's Redis client (:func:`init_redis` with its defaults if none yet)."""
    return _client if _client is not None else init_redis()


async def close_redis() -> None:
    """Close the process's Redis client (and its bytes-mode twin); the next
    :func:`init_redis` creates a new one."""
    global _client
    if _client is not None:
        closing, _client = _client, None
        await close_twin(closing)
        await closing.aclose()


def decodes(redis: Any) -> bool:
    """Whether ``redis`` turns replies into ``str`` (``decode_responses=True``)."""
    if is_cluster(redis):
        return bool(redis.get_encoder().decode_responses)
    pool = getattr(redis, "connection_pool", None)
    return bool(pool is not None and pool.connection_kwargs.get("decode_responses"))


def bytes_client(redis: aioredis.Redis) -> aioredis.Redis:
    """``redis`` itself if its replies are bytes, else its bytes-mode twin (made once)."""
    if not decodes(redis):
        return redis
    twin = _twins.get(redis)
    if twin is None:
        twin = _twins[redis] = _make_twin(redis)
    return twin


async def close_twin(redis: aioredis.Redis) -> None:
    """Close the bytes-mode twin of ``redis``, if one was made (a later use makes another)."""
    twin = _twins.pop(redis, None)
    if twin is not None:
        await twin.aclose()


def _make_twin(redis: aioredis.Redis) -> aioredis.Redis:
    if is_cluster(redis):
        raise ConfigurationError(
            "redis_client: a Redis Cluster client must leave replies as bytes "
            "(decode_responses=False); or pass a URL: GatewayClient.from_url(...)"
        )
    pool = redis.connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in _POOL_INTERNALS}
    kwargs["decode_responses"] = False
    if kwargs.get("protocol") in (3, "3"):
        kwargs["protocol"] = 2  # Byway reads RESP2 replies
    twin_pool: aioredis.ConnectionPool
    if isinstance(pool, aioredis.BlockingConnectionPool):
        twin_pool = aioredis.BlockingConnectionPool(
            max_connections=pool.max_connections,
            timeout=pool.timeout,
            connection_class=pool.connection_class,
            **kwargs,
        )
    else:
        twin_pool = aioredis.ConnectionPool(
            connection_class=pool.connection_class,
            max_connections=pool.max_connections,
            **kwargs,
        )
    return aioredis.Redis.from_pool(twin_pool)
