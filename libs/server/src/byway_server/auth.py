"""Who is asking: API keys bound to tenants, and stream tokens for browsers.

A request names its key in ``X-Api-Key`` (what langgraph-sdk and its JS twin send) or in
``Authorization: Bearer <key>``. A browser's ``EventSource`` cannot send headers, so the
native API hands out *stream tokens* (``?stream_token=``): signed, expiring, good for
reading one session of one tenant and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from byway_server.errors import ApiError
from byway_server.settings import DEFAULT_TENANT, ServerSettings

__all__ = ["Caller", "authenticate", "issue_stream_token"]

#: how long a stream token is good for
STREAM_TOKEN_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Caller:
    """The tenant a request acts for; ``session`` when a stream token limits it to one."""

    tenant: str
    session: str | None = None

    def may_read(self, session_id: str) -> bool:
        return self.session is None or self.session == session_id


def _sign(secret: bytes, payload: str) -> str:
    mac = hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(mac).decode()


def issue_stream_token(settings: ServerSettings, tenant: str, session_id: str) -> str:
    """A token that lets its holder read ``session_id``'s events as ``tenant`` for an hour."""
    expires = int(time.time()) + STREAM_TOKEN_SECONDS
    body = base64.urlsafe_b64encode(f"{tenant}\n{session_id}\n{expires}".encode()).decode()
    return f"{body}.{_sign(settings.stream_secret, body)}"


def _stream_caller(settings: ServerSettings, token: str) -> Caller:
    body, _, mac = token.partition(".")
    if not mac or not hmac.compare_digest(mac, _sign(settings.stream_secret, body)):
        raise ApiError(401, "stream_token: not a token this server issued", field="stream_token")
    try:
        tenant, session, expires = base64.urlsafe_b64decode(body).decode().split("\n")
        expired = int(expires) < time.time()
    except ValueError:
        raise ApiError(401, "stream_token: malformed", field="stream_token") from None
    if expired:
        raise ApiError(401, "stream_token: expired", field="stream_token")
    return Caller(tenant=tenant, session=session)


def _key_of(conn: HTTPConnection) -> str:
    key = conn.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, value = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            key = value.strip()
    return key


def authenticate(
    conn: HTTPConnection, settings: ServerSettings, *, stream_token: bool = False
) -> Caller:
    """The caller of ``conn``; raises a 401 :class:`ApiError` when it has no valid key.

    ``stream_token=True`` (the event-stream routes, GET only) also takes a stream token
    in ``?stream_token=`` when no key is sent; elsewhere a token alone is refused. With no
    API keys configured every caller is :data:`DEFAULT_TENANT` and tokens are not needed
    (nor checked: with no keys, each replica would sign with its own random secret)."""
    key = _key_of(conn)
    if not settings.auth_required:
        return Caller(tenant=DEFAULT_TENANT)
    token = conn.query_params.get("stream_token", "")
    if not key and token:
        if not stream_token or conn.scope.get("method") != "GET":
            raise ApiError(
                401,
                "stream_token: a stream token reads a session's events only; "
                "send X-Api-Key or Authorization: Bearer",
                field="stream_token",
            )
        return _stream_caller(settings, token)
    if not key:
        raise ApiError(
            401, "no API key: send X-Api-Key or Authorization: Bearer", field="x-api-key"
        )
    tenant = settings.tenant_of_key(key)
    if tenant is None:
        raise ApiError(401, "unknown API key", field="x-api-key")
    return Caller(tenant=tenant)
