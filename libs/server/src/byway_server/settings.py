"""What ``byway serve`` reads from its flags and environment.

- ``BYWAY_SERVER_API_KEYS``: ``tenant=key`` pairs, comma separated
  (``acme=k-1a2b,globex=k-9z8y``), or ``BYWAY_SERVER_API_KEYS_FILE``: a file of such
  pairs, one per line (``#`` comments). Each key reaches only its tenant's sessions. With
  none, every request is the tenant ``default`` and the server binds loopback only.
- ``BYWAY_SERVER_CORS_ORIGINS``: origins allowed to call from a browser (comma list, ``*``).
- ``BYWAY_SERVER_MAX_BODY_BYTES``: the largest request body (1 MiB).
- ``BYWAY_SERVER_HEARTBEAT_SECONDS``: how often an idle event stream gets a comment (15).
- ``BYWAY_SERVER_STREAM_SECRET``: signs the stream tokens that let a browser's
  ``EventSource`` (which cannot send headers) read one session (derived from the keys
  when unset; random per process with no keys).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from byway import GatewayClient
from byway.errors import ConfigurationError

__all__ = ["DEFAULT_TENANT", "ServerSettings", "parse_api_keys"]

#: the tenant of every request when no API keys are configured
DEFAULT_TENANT = "default"
_MIB = 1024 * 1024


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_api_keys(text: str, *, source: str) -> dict[str, str]:
    """``tenant=key`` pairs (comma or newline separated) → {sha256(key): tenant}."""
    keys: dict[str, str] = {}
    for raw in text.replace("\n", ",").split(","):
        item = raw.split("#", 1)[0].strip()
        if not item:
            continue
        tenant, sep, key = item.partition("=")
        tenant, key = tenant.strip(), key.strip()
        if not sep or not tenant or not key:
            raise ConfigurationError(f"{source}: expected tenant=key pairs, got {item[:40]!r}")
        if len(key) < 16:
            raise ConfigurationError(
                f"{source}: the key of tenant {tenant!r} is shorter than 16 characters"
            )
        if not tenant.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ConfigurationError(
                f"{source}: tenant {tenant!r}: letters, digits, '-', '_' and '.' only"
            )
        digest = _digest(key)
        if digest in keys and keys[digest] != tenant:
            raise ConfigurationError(f"{source}: one key is given to two tenants")
        keys[digest] = tenant
    return keys


def _derived_secret(api_keys: dict[str, str]) -> bytes:
    """The stream-token secret when none is configured: every replica given the same keys
    derives the same one (a token one signs, another accepts: a load balancer may send the
    reconnect anywhere); holding one tenant's key is not enough to derive it when there
    are several. No keys: random (tokens are not needed then)."""
    if not api_keys:
        return secrets.token_bytes(32)
    material = "".join(sorted(api_keys)).encode()
    return hmac.new(b"byway-stream-token", material, "sha256").hexdigest().encode()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}: expected an integer, got {raw!r}") from None
    if value <= 0:
        raise ConfigurationError(f"{name}: expected a positive integer, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The server's configuration (see the module's docstring for the variables)."""

    host: str = "127.0.0.1"
    port: int = 8123
    #: None: the worker's own resolution (BYWAY_REDIS_URL, else the embedded Redis)
    redis_url: str | None = None
    #: None: ``BYWAY_NAMESPACE`` / ``BYWAY_KEY_SCHEMA``, else the defaults
    namespace: str | None = None
    key_schema: str | None = None
    #: sha256(key) → tenant
    api_keys: dict[str, str] = field(default_factory=dict)
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = _MIB
    heartbeat_seconds: float = 15.0
    stream_secret: bytes = b""

    @classmethod
    def from_env(cls, **overrides: object) -> ServerSettings:
        keys: dict[str, str] = {}
        if os.environ.get("BYWAY_SERVER_API_KEYS"):
            keys.update(
                parse_api_keys(os.environ["BYWAY_SERVER_API_KEYS"], source="BYWAY_SERVER_API_KEYS")
            )
        path = os.environ.get("BYWAY_SERVER_API_KEYS_FILE", "")
        if path:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise ConfigurationError(f"BYWAY_SERVER_API_KEYS_FILE: {exc}") from None
            keys.update(parse_api_keys(text, source="BYWAY_SERVER_API_KEYS_FILE"))
        origins = tuple(
            o.strip() for o in os.environ.get("BYWAY_SERVER_CORS_ORIGINS", "").split(",")
        )
        heartbeat = os.environ.get("BYWAY_SERVER_HEARTBEAT_SECONDS", "")
        try:
            beat = float(heartbeat) if heartbeat else 15.0
        except ValueError:
            raise ConfigurationError(
                f"BYWAY_SERVER_HEARTBEAT_SECONDS: expected seconds, got {heartbeat!r}"
            ) from None
        if not math.isfinite(beat) or beat <= 0:
            raise ConfigurationError(
                f"BYWAY_SERVER_HEARTBEAT_SECONDS: expected seconds > 0, got {heartbeat!r}"
            )
        values: dict[str, object] = {
            "redis_url": os.environ.get("BYWAY_REDIS_URL") or os.environ.get("REDIS_URL") or None,
            "namespace": os.environ.get("BYWAY_NAMESPACE") or None,
            "key_schema": os.environ.get("BYWAY_KEY_SCHEMA") or None,
            "api_keys": keys,
            "cors_origins": tuple(o for o in origins if o),
            "max_body_bytes": _env_int("BYWAY_SERVER_MAX_BODY_BYTES", _MIB),
            "heartbeat_seconds": beat,
        }
        secret = os.environ.get("BYWAY_SERVER_STREAM_SECRET", "").encode()
        if secret:
            values["stream_secret"] = secret
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if not self.stream_secret:  # never sign with an empty secret
            object.__setattr__(self, "stream_secret", _derived_secret(self.api_keys))

    def client(self) -> GatewayClient:
        """A Byway client on this server's Redis, namespace and key schema."""
        overrides: dict[str, Any] = {}
        if self.namespace:
            overrides["namespace"] = self.namespace
        if self.key_schema:
            overrides["schema"] = self.key_schema
        return GatewayClient.from_url(self.redis_url, **overrides)

    @property
    def auth_required(self) -> bool:
        return bool(self.api_keys)

    def tenant_of_key(self, key: str) -> str | None:
        """The tenant ``key`` belongs to, or None (compared in constant time)."""
        digest = _digest(key)
        found = None
        for known, tenant in self.api_keys.items():
            if hmac.compare_digest(known, digest):
                found = tenant
        return found
