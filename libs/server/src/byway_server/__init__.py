"""byway-server: ``byway serve``, Byway's HTTP/SSE front door.

- :func:`create_app` builds the ASGI app (FastAPI) uvicorn runs;
- :class:`ServerContext` is what route contributors (the ``byway.server`` entry points,
  e.g. byway-langgraph's LangGraph Server API) get: the client, the caller, tenancy;
- :mod:`byway_server.sse` writes event streams with ``id:`` = Redis entry ids.
"""

from byway_server.app import context_of, create_app
from byway_server.auth import Caller, issue_stream_token
from byway_server.context import ROUTES_GROUP, ServerContext, valid_id
from byway_server.errors import ApiError
from byway_server.settings import DEFAULT_TENANT, ServerSettings
from byway_server.sse import SSE, resume_point, sse_response

__all__ = [
    "DEFAULT_TENANT",
    "ROUTES_GROUP",
    "SSE",
    "ApiError",
    "Caller",
    "ServerContext",
    "ServerSettings",
    "context_of",
    "create_app",
    "issue_stream_token",
    "resume_point",
    "sse_response",
    "valid_id",
]
