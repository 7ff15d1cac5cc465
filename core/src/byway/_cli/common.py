"""What the ``byway`` commands share: Redis settings from the flags, the Redis options,
and running a module's ``main(args, settings)``."""

from __future__ import annotations

import argparse
import importlib
from dataclasses import replace
from typing import Any, TypeAlias

from byway.settings import RedisSettings

__all__ = ["Commands", "add_redis_options", "run_module", "settings_of"]

#: what ``ArgumentParser.add_subparsers()`` returns: each command adds its parser to it
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def settings_of(args: argparse.Namespace) -> RedisSettings:
    settings = RedisSettings.from_env()
    overrides: dict[str, Any] = {}
    if getattr(args, "redis_url", None):
        overrides["url"] = args.redis_url
    if getattr(args, "namespace", None):
        overrides["namespace"] = args.namespace
    if getattr(args, "key_schema", None):
        overrides["schema"] = args.key_schema
    return replace(settings, **overrides) if overrides else settings


def add_redis_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("redis")
    g.add_argument(
        "--redis-url",
        metavar="URL",
        help="redis://, rediss:// or unix:// URL, or redis+cluster://NODE for a Redis Cluster "
        "(default: $BYWAY_REDIS_URL, else embedded; a URL with a password belongs in "
        "$BYWAY_REDIS_URL: a command line is visible to ps)",
    )
    g.add_argument("--namespace", help="key namespace (default: $BYWAY_NAMESPACE or byai_gateway)")
    g.add_argument(
        "--key-schema",
        choices=["v1", "v2"],
        help="key layout (default: v2 on a Redis Cluster, which needs it, else v1)",
    )


def run_module(module: str, args: argparse.Namespace) -> int:
    """``module.main(args, settings)``, the module imported only now."""
    result: int = importlib.import_module(module).main(args, settings_of(args))
    return result
