"""Connection settings: where Redis is, which namespace and key schema to use.

``RedisSettings.from_env()`` reads ``BYWAY_REDIS_URL`` (or ``REDIS_URL``),
``BYWAY_NAMESPACE``, ``BYWAY_KEY_SCHEMA`` and ``BYAI_REDIS_MAX_CONNECTIONS``. With no
URL at all, Byway starts or attaches the machine's embedded Redis (see
:mod:`byway.embedded`). URLs may be ``redis://``, ``rediss://`` (TLS) or ``unix://``,
with an ACL user and password: ``redis://user:secret@host:6379/0`` (or
``?password=secret``). Whatever Byway prints of a URL (``describe()``, ``repr()``, error
messages) has its password masked.

A Redis Cluster is named by ``redis+cluster://`` (or ``rediss+cluster://``) and the
address of any one of its nodes; the client finds the others. A cluster uses key schema
v2 unless told otherwise, and refuses v1 (whose keys cannot be kept within one slot).

TLS: a ``rediss://`` URL verifies the server against the system's CAs. A private CA and
a client certificate (``tls-auth-clients yes``) are given by ``BYWAY_REDIS_TLS_CA``,
``BYWAY_REDIS_TLS_CERT`` and ``BYWAY_REDIS_TLS_KEY`` (PEM file paths), or by redis-py's
URL query parameters: ``rediss://host:6380/0?ssl_ca_certs=ca.pem&ssl_certfile=client.pem
&ssl_keyfile=client.key`` (the URL wins where both are given).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from byway._connection import connection_class_for
from byway._redact import redact_text, redact_url
from byway.embedded import ensure_embedded_redis
from byway.errors import ConfigurationError
from byway.keys import DEFAULT_NAMESPACE, Keys

__all__ = ["RedisSettings", "is_cluster"]

#: longest a caller waits for a free pooled connection before the command fails
_POOL_WAIT_S = 30

_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")


def is_cluster(redis: object) -> bool:
    """Whether ``redis`` is a Redis Cluster client (commands must keep to one slot)."""
    return isinstance(redis, RedisCluster)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}: expected an integer, got {raw!r}") from None
    if value <= 0:
        raise ConfigurationError(f"{name}: expected a positive integer, got {value}")
    return value


@dataclass(frozen=True, slots=True, repr=False)
class RedisSettings:
    """Where Byway's Redis is and how keys are laid out in it.

    ``url=None`` means the embedded server. ``max_connections`` bounds the connection
    pool of one process (a worker holds one connection in its blocking read).
    ``schema=None`` means v2 on a cluster and v1 elsewhere.
    """

    url: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    schema: Literal["v1", "v2"] | None = None
    max_connections: int = 64
    socket_timeout: float | None = None
    health_check_interval: int = 30
    #: PEM files for TLS (``rediss://``): the CA that signed the server's certificate, and
    #: this client's certificate and key for a server that checks clients
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        if self.url is not None:
            scheme = urlsplit(self.url).scheme
            if scheme not in _SCHEMES:
                raise ConfigurationError(
                    "redis_url: expected a redis://, rediss://, unix://, redis+cluster:// or "
                    f"rediss+cluster:// URL, got {redact_url(self.url)!r}"
                )
            for name, path in self._tls_files().items():
                if not scheme.startswith("rediss"):
                    raise ConfigurationError(f"{name}: TLS files need a rediss:// URL")
                if not os.path.isfile(path):
                    raise ConfigurationError(f"{name}: expected a PEM file, got {path!r}")
            if self.cluster and self.schema == "v1":
                raise ConfigurationError(
                    "schema: a Redis Cluster needs key schema v2 (hash-tagged keys), got 'v1'"
                )
        if self.max_connections < 2:
            raise ConfigurationError(
                f"max_connections: expected at least 2, got {self.max_connections}"
            )
        _ = self.keys  # validates namespace and schema

    def __repr__(self) -> str:
        return (
            f"RedisSettings(url={self.describe()!r}, namespace={self.namespace!r}, "
            f"schema={self.schema!r}, max_connections={self.max_connections})"
        )

    @property
    def cluster(self) -> bool:
        """Whether the URL names a Redis Cluster (``redis+cluster://``)."""
        return self.url is not None and urlsplit(self.url).scheme.endswith("+cluster")

    @classmethod
    def from_url(cls, url: str | None, **overrides: object) -> RedisSettings:
        return replace(cls.from_env(), url=url, **overrides)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls) -> RedisSettings:
        url = os.environ.get("BYWAY_REDIS_URL") or os.environ.get("REDIS_URL") or None
        schema = os.environ.get("BYWAY_KEY_SCHEMA") or None
        if schema not in (None, "v1", "v2"):
            raise ConfigurationError(f"BYWAY_KEY_SCHEMA: expected v1 or v2, got {schema!r}")
        return cls(
            url=url,
            namespace=os.environ.get("BYWAY_NAMESPACE", DEFAULT_NAMESPACE),
            schema=schema,  # type: ignore[arg-type]
            max_connections=_env_int("BYAI_REDIS_MAX_CONNECTIONS", 64),
            tls_ca=os.environ.get("BYWAY_REDIS_TLS_CA") or None,
            tls_cert=os.environ.get("BYWAY_REDIS_TLS_CERT") or None,
            tls_key=os.environ.get("BYWAY_REDIS_TLS_KEY") or None,
        )

    def _tls_files(self) -> dict[str, str]:
        """The TLS files that are set, by setting name."""
        named = {"tls_ca": self.tls_ca, "tls_cert": self.tls_cert, "tls_key": self.tls_key}
        return {name: path for name, path in named.items() if path}

    def _tls_kwargs(self) -> dict[str, str]:
        """redis-py's connection arguments for the TLS files that are set."""
        names = {"tls_ca": "ssl_ca_certs", "tls_cert": "ssl_certfile", "tls_key": "ssl_keyfile"}
        return {names[name]: path for name, path in self._tls_files().items()}

    @property
    def keys(self) -> Keys:
        schema = self.schema or ("v2" if self.cluster else "v1")
        return Keys(self.namespace, schema)

    def resolved_url(self) -> str:
        """The URL to connect to, starting the embedded server when none is configured."""
        return self.url if self.url is not None else ensure_embedded_redis()

    def describe(self) -> str:
        """The URL with its password masked (userinfo and query alike), for output."""
        return "embedded" if self.url is None else redact_url(self.url)

    def client(self) -> aioredis.Redis:
        """A new asyncio client with its own pool (bytes in, bytes out).

        For a cluster this is a :class:`redis.asyncio.RedisCluster`, which offers the same
        commands (each routed to the node of its key's slot). A URL redis-py refuses is a
        :class:`ConfigurationError` whose message has the password masked."""
        try:
            return self._client()
        except (ValueError, TypeError, IndexError) as exc:
            # redis-py's parse errors may quote the URL or a part of it
            raise ConfigurationError(
                f"redis_url: {redact_text(str(exc), self.url)} (in {self.describe()!r})"
            ) from None

    def _client(self) -> aioredis.Redis:
        if self.cluster:
            assert self.url is not None
            plain = self.url.replace("+cluster://", "://", 1)
            cluster: Any = RedisCluster.from_url(
                plain,
                max_connections=self.max_connections,
                socket_timeout=self.socket_timeout,
                health_check_interval=self.health_check_interval,
                decode_responses=False,
                **self._tls_kwargs(),
            )
            return cast(aioredis.Redis, cluster)
        url = self.resolved_url()
        # a blocking pool: when every connection is busy (many tasks writing at once) a
        # caller waits for one instead of failing with "Too many connections"
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=self.max_connections,
            timeout=_POOL_WAIT_S,
            socket_timeout=self.socket_timeout,
            health_check_interval=self.health_check_interval,
            decode_responses=False,
            **self._tls_kwargs(),
        )
        # the same kind of connection, packing commands with hiredis (set after from_url,
        # whose URL options would override a connection_class argument)
        pool.connection_class = connection_class_for(urlsplit(url).scheme)
        return aioredis.Redis.from_pool(pool)
