"""What a route gets from the server: the Byway client, the caller, tenancy, SSE.

Packages add routes to ``byway serve`` through the ``byway.server`` entry-point group:
each entry point is a callable ``routes(ctx: ServerContext) -> fastapi.APIRouter``,
called once at start-up (see :mod:`byway_server.app`). The server itself knows no
framework; the LangGraph Server API arrives from ``byway-langgraph`` this way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis

from byway import GatewayClient
from byway.errors import ProtocolError
from byway.keys import Keys
from byway.protocol import check_id
from byway_server.auth import Caller, authenticate
from byway_server.errors import ApiError
from byway_server.settings import ServerSettings

__all__ = ["ROUTES_GROUP", "TENANT_FIELD", "ServerContext", "valid_id"]

#: the entry-point group of route contributors
ROUTES_GROUP = "byway.server"
#: the session registry hash's field naming the tenant that owns the session
TENANT_FIELD = "tenant"
#: how long a session claimed before any task ran keeps its owner (a session's records
#: get their own retention once a task runs)
_CLAIM_TTL_S = 7 * 86400
#: the two ways of sending a key, as the OpenAPI at /docs shows them (checked by
#: :func:`byway_server.auth.authenticate`, not by these)
API_KEY_HEADER = APIKeyHeader(name="X-Api-Key", auto_error=False)
BEARER = HTTPBearer(auto_error=False)


@dataclass(slots=True)
class ServerContext:
    """Shared by every route of one server process."""

    settings: ServerSettings
    client: GatewayClient
    #: functions run when the server stops (a contributor's own clean-up)
    on_shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def redis(self) -> Redis:
        return self.client.redis

    @property
    def keys(self) -> Keys:
        return self.client.keys

    def caller(
        self,
        request: Request,
        _key: Annotated[str | None, Security(API_KEY_HEADER)] = None,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
    ) -> Caller:
        """The request's caller, by its API key (a FastAPI dependency:
        ``Depends(ctx.caller)``; the ``Security`` parameters only document the two ways
        of sending the key in the OpenAPI)."""
        return authenticate(request, self.settings)

    def stream_caller(
        self,
        request: Request,
        _key: Annotated[str | None, Security(API_KEY_HEADER)] = None,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
    ) -> Caller:
        """As :meth:`caller`, but a GET may also show a stream token (``?stream_token=``,
        what a browser's ``EventSource`` can send): for event-stream routes only."""
        return authenticate(request, self.settings, stream_token=True)

    # -- tenancy ---------------------------------------------------------------------------

    async def claim_session(self, caller: Caller, session_id: str) -> None:
        """Make ``session_id`` the caller's tenant's, or raise 404 if another owns it.

        With API keys configured a session that exists in Redis but that no tenant owns
        (a backend wrote it directly, not through this server) is no one's to claim: 404.
        """
        if caller.session is not None and caller.session != session_id:
            raise ApiError(403, "this stream token reads one session only", field="stream_token")
        valid_id("session_id", session_id)
        key = self.keys.session_registry(session_id)
        owner = await self.redis.hget(key, TENANT_FIELD)
        if owner is None and self.settings.auth_required and await self._exists(session_id):
            raise _not_found(session_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hsetnx(key, TENANT_FIELD, caller.tenant)
            pipe.hget(key, TENANT_FIELD)
            pipe.ttl(key)
            _, owner, ttl = await pipe.execute()
        if ttl == -1:
            await self.redis.expire(key, _CLAIM_TTL_S)
        if _text(owner) != caller.tenant:
            raise _not_found(session_id)

    async def check_session(self, caller: Caller, session_id: str) -> bool:
        """Raise 404 unless the session is the caller's tenant's; False if no one owns it yet
        (nothing was ever sent to it through this server). A stream token for another
        session is a 403."""
        if not caller.may_read(session_id):
            raise ApiError(403, "this stream token reads one session only", field="stream_token")
        valid_id("session_id", session_id)
        owner = await self.redis.hget(self.keys.session_registry(session_id), TENANT_FIELD)
        if owner is None:
            return False
        if _text(owner) != caller.tenant:
            raise _not_found(session_id)
        return True

    async def owned_session(self, caller: Caller, session_id: str) -> None:
        """Raise 404 unless the session exists and is the caller's tenant's. With no API keys
        (one tenant, this machine only) a session written by a backend directly counts too."""
        if await self.check_session(caller, session_id):
            return
        if self.settings.auth_required or not await self._exists(session_id):
            raise _not_found(session_id)

    async def _exists(self, session_id: str) -> bool:
        """Whether the session has records or events in Redis."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.keys.session_registry(session_id))
            pipe.exists(self.keys.session_stream(session_id))
            found = await pipe.execute()
        return any(found)


def valid_id(field: str, value: str) -> str:
    """``value`` if it is an id Byway accepts (1-256 characters, no control characters, no
    braces), else a 422 naming ``field``."""
    try:
        return check_id(field, value, forbid_braces=True)
    except ProtocolError as exc:
        raise ApiError(422, str(exc), field=field) from None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _not_found(session_id: str) -> ApiError:
    return ApiError(404, f"session {session_id!r} not found", field="session_id")
