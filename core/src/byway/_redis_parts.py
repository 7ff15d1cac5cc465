"""A Redis URL from by-framework's connection parameters (host, port, db, user, password).

by-framework names its Redis by ``redis_host``, ``redis_port``, ``redis_db``,
``redis_username`` and ``redis_password``; Byway by one URL. :func:`url_from_parts`
turns the first form into the second (the user and password quoted, so any character
is allowed), checking each part and naming the one that is wrong.
"""

from __future__ import annotations

from urllib.parse import quote

from byway.errors import ConfigurationError

__all__ = ["url_from_parts"]

#: by-framework's defaults
DEFAULT_HOST = "localhost"
DEFAULT_PORT = 6379
DEFAULT_DB = 0

_HOST_FORBIDDEN = set("/@?#[] \t\r\n\x00")


def _int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name}: expected an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        span = f"{low}-{high}" if high is not None else f">= {low}"
        raise ConfigurationError(f"{name}: expected an integer {span}, got {value}")
    return value


def url_from_parts(
    host: str | None = None,
    port: int | None = None,
    db: int | None = None,
    username: str | None = None,
    password: str | None = None,
) -> str:
    """``redis://[user[:password]@]host:port/db``; a part not given takes by-framework's
    default (localhost, 6379, 0)."""
    host = DEFAULT_HOST if host is None else host
    if not isinstance(host, str) or not host or _HOST_FORBIDDEN & set(host.strip("[]")):
        raise ConfigurationError(f"redis_host: expected a host name or address, got {host!r}")
    if ":" in host and not host.startswith("["):  # an IPv6 address
        host = f"[{host}]"
    port = _int("redis_port", DEFAULT_PORT if port is None else port, 1, 65535)
    db = _int("redis_db", DEFAULT_DB if db is None else db, 0)
    auth = ""
    for name, value in (("redis_username", username), ("redis_password", password)):
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(f"{name}: expected a string, got {type(value).__name__}")
    if username or password:
        auth = quote(username or "", safe="")
        if password:
            auth += ":" + quote(password, safe="")
        auth += "@"
    return f"redis://{auth}{host}:{port}/{db}"
