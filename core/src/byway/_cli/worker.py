"""``byway worker``: serve an agent."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from byway._cli.common import Commands, add_redis_options, settings_of
from byway._log import setup_logging
from byway.health import DEFAULT_HEALTH_HOST

__all__ = ["add_worker", "env_flag", "json_logging"]


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` says yes (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def json_logging() -> None:
    """Switch this process's logging (configured as text by the command) to JSON lines,
    at the level it has."""
    setup_logging(level=logging.root.level, use_json=True)


def add_worker(sub: Commands) -> None:
    p = sub.add_parser(
        "worker",
        help="run a worker",
        description=(
            "Serve an agent: TARGET is module:attr naming a GatewayWorker subclass or instance, "
            "or an @byway.agent function."
        ),
    )
    p.add_argument("target", metavar="TARGET", help="module:attr, e.g. myapp.agents:Echo")
    p.add_argument(
        "--agent-type",
        action="append",
        metavar="T",
        help="agent type to serve (function agents and adapters; repeatable)",
    )
    p.add_argument("--worker-id", help="stable worker id (default: host-pid-random)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("BYAI_WORKER_CONCURRENCY", 50)),
        help="max tasks at once (default 50, $BYAI_WORKER_CONCURRENCY)",
    )
    p.add_argument(
        "--fetch-count",
        type=int,
        default=int(os.environ.get("BYAI_WORKER_FETCH_COUNT", 10)),
        help="entries per read (default 10, $BYAI_WORKER_FETCH_COUNT)",
    )
    p.add_argument("--consumer-group", default="agent_engines")
    p.add_argument("--lease-seconds", type=float, default=15.0, help="heartbeat lease (15)")
    p.add_argument(
        "--health-port",
        type=int,
        help="serve /healthz and /readyz on this port (off by default)",
    )
    p.add_argument(
        "--health-host",
        metavar="ADDR",
        default=os.environ.get("BYWAY_HEALTH_HOST") or DEFAULT_HEALTH_HOST,
        help="address the health server listens on: 127.0.0.1 (default, $BYWAY_HEALTH_HOST), "
        "0.0.0.0 for every interface (probes from other hosts)",
    )
    p.add_argument(
        "--max-deliveries",
        type=int,
        default=5,
        help="deliveries before a task that never finishes is dead-lettered (5)",
    )
    p.add_argument(
        "--multitask-strategy",
        choices=["enqueue", "reject", "interrupt"],
        default="enqueue",
        help="what a new message does while its session runs a task (enqueue)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds to finish running tasks on SIGTERM (30)",
    )
    p.add_argument(
        "--plugin",
        action="append",
        metavar="MODULE:CLASS",
        help="run this plugin instead of the installed ones (repeatable)",
    )
    p.add_argument("--plugin-dir", metavar="DIR", help="also load the plugins in DIR/*.py")
    p.add_argument(
        "--plugin-hook-timeout",
        type=float,
        default=5.0,
        help="seconds a plugin hook may take before it is skipped (5)",
    )
    p.add_argument(
        "--workspace",
        metavar="DIR",
        help="root of the per-session/task workspaces (context.workspace; default "
        "$BYWAY_WORKSPACE_DIR, else <tempdir>/byway-workspace-<uid>)",
    )
    p.add_argument(
        "--log-json",
        action="store_true",
        default=env_flag("BYWAY_LOG_JSON"),
        help="log JSON lines with the ids of each line's task ($BYWAY_LOG_JSON=1)",
    )
    p.add_argument(
        "--history-limit",
        type=int,
        default=20,
        help="turns of session history handed to each root task, 0 for none (20)",
    )
    add_redis_options(p)
    p.set_defaults(func=_cmd_worker)


def _cmd_worker(args: argparse.Namespace) -> int:
    from byway.app import load_worker, serve
    from byway.plugins import discover_plugins
    from byway.runner import RunnerConfig
    from byway.workspace import WorkspacePolicy

    if args.log_json:
        json_logging()
    worker = load_worker(args.target, worker_id=args.worker_id, agent_types=args.agent_type)
    config = RunnerConfig(
        max_concurrency=args.concurrency,
        fetch_count=args.fetch_count,
        consumer_group=args.consumer_group,
        lease_seconds=args.lease_seconds,
        drain_timeout=args.drain_timeout,
        max_deliveries=args.max_deliveries,
        multitask_strategy=args.multitask_strategy,
        plugin_hook_timeout_seconds=args.plugin_hook_timeout,
        history_limit=args.history_limit,
    )
    plugins = discover_plugins(args.plugin or None, None, args.plugin_dir)
    asyncio.run(
        serve(
            worker,
            settings=settings_of(args),
            config=config,
            health_port=args.health_port,
            health_host=args.health_host,
            plugins=plugins,
            workspace=WorkspacePolicy.from_env(args.workspace),
        )
    )
    return 0
