"""``python -m byway``: the ``byway`` commands, and by-framework's flag-only form.

by-framework starts a worker with ``python -m by_framework --worker-class my_agent.MyAgent
--worker-id worker-01 --redis-host localhost``; the same line with ``byway`` runs here.
An argument list whose first option is one of by-framework's flags goes to that form;
anything else to the ``byway`` commands (``python -m byway worker ...``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from redis.exceptions import RedisError

from byway._redact import redact_text
from byway.errors import BywayError, ConfigurationError

__all__ = ["BY_FRAMEWORK_FLAGS", "build_parser", "main", "run"]

#: the flags of by-framework's ``python -m by_framework``
BY_FRAMEWORK_FLAGS = frozenset(
    {
        "--worker-class",
        "--worker-id",
        "--redis-host",
        "--redis-port",
        "--redis-db",
        "--workspace",
        "--max-concurrency",
        "--fetch-count",
        "--redis-max-connections",
    }
)

FORMS_HELP = (
    "Also by-framework's form, which runs a worker: python -m byway --worker-class "
    "module.Class [--worker-id ID] [--redis-host HOST] [--redis-port PORT] [--redis-db N] "
    "[--workspace DIR] [--max-concurrency N] [--fetch-count N] [--redis-max-connections N] "
    "(python -m byway --worker-class X --help lists them)."
)


def _int_type(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f"{low}-{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"expected an integer {span}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m byway",
        description="Run a worker, by-framework's way (the byway commands: python -m byway "
        "--help). Redis: the --redis-* flags, else $BYWAY_REDIS_URL, else the embedded "
        "server; namespace and key schema: $BYWAY_NAMESPACE, $BYWAY_KEY_SCHEMA.",
    )
    p.add_argument(
        "--worker-class",
        required=True,
        metavar="CLASS",
        help="the GatewayWorker class: module.Class (or module:attr, as byway worker takes)",
    )
    p.add_argument("--worker-id", help="stable worker id (default: host-pid-random)")
    p.add_argument("--redis-host", help="Redis host (localhost when another --redis-* is given)")
    p.add_argument("--redis-port", type=_int_type(1, 65535), help="Redis port (6379)")
    p.add_argument("--redis-db", type=_int_type(0), help="Redis database number (0)")
    p.add_argument(
        "--workspace",
        metavar="DIR",
        help="workspace root (default $BYWAY_WORKSPACE_DIR, else <tempdir>/byway-workspace-<uid>)",
    )
    p.add_argument(
        "--max-concurrency",
        type=_int_type(1),
        help="max tasks at once ($BYAI_WORKER_CONCURRENCY, else 50)",
    )
    p.add_argument(
        "--fetch-count",
        type=_int_type(1),
        help="entries per read ($BYAI_WORKER_FETCH_COUNT, else 10)",
    )
    p.add_argument(
        "--redis-max-connections",
        type=_int_type(2),
        help="connection pool size ($BYAI_REDIS_MAX_CONNECTIONS, else max-concurrency + 10)",
    )
    p.add_argument(
        "--log-level",
        default=os.environ.get("BYWAY_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO (default), WARNING, ERROR",
    )
    p.add_argument(
        "--log-json",
        action="store_true",
        default=os.environ.get("BYWAY_LOG_JSON", "").strip().lower() in ("1", "true", "yes", "on"),
        help="log JSON lines ($BYWAY_LOG_JSON=1)",
    )
    return p


def _is_by_framework(argv: Sequence[str]) -> bool:
    """Whether the first option (after ``--log-level X`` and ``--log-json``, which both
    forms take) is one of by-framework's."""
    i = 0
    while i < len(argv):
        flag = argv[i].split("=", 1)[0]
        if flag == "--log-level":
            i += 1 if "=" in argv[i] else 2
            continue
        if flag == "--log-json":
            i += 1
            continue
        return flag in BY_FRAMEWORK_FLAGS
    return False


def _class_target(path: str) -> str:
    """``module.Class`` as ``module:Class``; ``module:attr`` as it is."""
    if ":" in path:
        return path
    module, dot, name = path.rpartition(".")
    if not dot or not module or not name:
        raise ConfigurationError(
            f"--worker-class: expected module.Class (e.g. my_agent.MyAgent), got {path!r}"
        )
    return f"{module}:{name}"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}: expected an integer, got {raw!r}") from None


def run(args: argparse.Namespace) -> int:
    """Serve ``--worker-class`` as ``byway worker`` would (flags win over the environment)."""
    import asyncio

    from byway.app import BY_FRAMEWORK_REDIS_URL, load_worker, redis_settings, serve
    from byway.config import RunnerConfig
    from byway.plugins import discover_plugins
    from byway.workspace import WorkspacePolicy

    if args.log_json:
        from byway._cli.worker import json_logging

        json_logging()
    try:
        worker = load_worker(_class_target(args.worker_class), worker_id=args.worker_id)
    except ConfigurationError as exc:
        text = str(exc).removeprefix("worker: ")
        raise ConfigurationError(
            text if text.startswith("--worker-class") else f"--worker-class: {text}"
        ) from None
    concurrency = args.max_concurrency or _env_int("BYAI_WORKER_CONCURRENCY", 50)
    config = RunnerConfig(
        max_concurrency=concurrency,
        fetch_count=args.fetch_count or _env_int("BYAI_WORKER_FETCH_COUNT", 10),
    )
    settings = redis_settings(
        default_url=BY_FRAMEWORK_REDIS_URL,
        redis_host=args.redis_host,
        redis_port=args.redis_port,
        redis_db=args.redis_db,
        max_concurrency=concurrency,
    )
    if args.redis_max_connections is not None:  # the flag wins over the environment
        from dataclasses import replace

        settings = replace(settings, max_connections=args.redis_max_connections)
    asyncio.run(
        serve(
            worker,
            settings=settings,
            config=config,
            plugins=discover_plugins(None, None, None),
            workspace=WorkspacePolicy.from_env(args.workspace),
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m byway``: by-framework's form or a ``byway`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not _is_by_framework(argv):
        from byway.cli import build_parser as byway_parser
        from byway.cli import main as byway_main

        if argv in (["-h"], ["--help"]) or not argv:
            parser = byway_parser()
            parser.epilog = FORMS_HELP
            parser.prog = "python -m byway"
            if not argv:
                parser.print_usage(sys.stderr)
                print(f"{parser.prog}: {FORMS_HELP}", file=sys.stderr)
                return 2
            parser.print_help()
            return 0
        return byway_main(argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return run(args)
    except BywayError as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except RedisError as exc:
        print(f"error: redis: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
