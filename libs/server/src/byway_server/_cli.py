"""``byway serve``: run the HTTP/SSE front door under uvicorn.

The core's command line finds :func:`add_serve_command` through the ``byway.cli`` entry
point ``serve``.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

from byway.errors import ConfigurationError

__all__ = ["add_serve_command", "is_loopback", "serve_command"]


def add_serve_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "serve",
        help="the HTTP/SSE front door: native API and the installed packages' routes",
        description=(
            "Serve Byway over HTTP: send, stream (SSE with Last-Event-ID resume), resume, "
            "cancel, and the routes installed packages add (the LangGraph Server API with "
            "byway-langgraph). Stateless: run as many replicas as you like on one Redis. "
            "API keys: BYWAY_SERVER_API_KEYS=tenant=key,... (without any, loopback only)."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=int, default=8123, help="port to bind (8123)")
    p.add_argument("--redis-url", help="Redis URL (default: $BYWAY_REDIS_URL, else embedded)")
    p.add_argument(
        "--namespace", help="key namespace (default: $BYWAY_NAMESPACE, else byai_gateway)"
    )
    p.add_argument("--key-schema", choices=("v1", "v2"), help="key schema (v2 on a cluster)")
    p.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="allow browser calls from ORIGIN (repeatable; default $BYWAY_SERVER_CORS_ORIGINS)",
    )
    p.add_argument("--log-level", default="info", help="uvicorn's log level (info)")
    p.set_defaults(func=serve_command)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from byway_server.app import create_app
    from byway_server.settings import ServerSettings

    overrides: dict[str, object] = {"host": args.host, "port": args.port}
    if args.redis_url:
        overrides["redis_url"] = args.redis_url
    if args.namespace:
        overrides["namespace"] = args.namespace
    if args.key_schema:
        overrides["key_schema"] = args.key_schema
    if args.cors_origin:
        overrides["cors_origins"] = tuple(args.cors_origin)
    try:
        settings = ServerSettings.from_env(**overrides)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not settings.auth_required:
        if not is_loopback(settings.host):
            print(
                f"error: no API keys configured: refusing to bind {settings.host} "
                "(set BYWAY_SERVER_API_KEYS=tenant=key,... or bind 127.0.0.1)",
                file=sys.stderr,
            )
            return 2
        print(
            f"byway serve: no API keys configured, so only this machine can connect "
            f"({settings.host}); set BYWAY_SERVER_API_KEYS to serve others",
            file=sys.stderr,
        )
    app = create_app(settings)
    print(f"byway serve: http://{settings.host}:{settings.port} (API docs at /docs)",
          file=sys.stderr)  # fmt: skip
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0
