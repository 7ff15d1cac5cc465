"""Running and inspecting a deployment: ``byway reload``, ``cancel``, ``dlq``, ``status``,
``acl``, ``demo``, ``bench`` and ``embedded``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from byway._cli.common import Commands, add_redis_options, run_module, settings_of
from byway._log import escape_controls

__all__ = [
    "add_acl",
    "add_bench",
    "add_cancel",
    "add_demo",
    "add_dlq",
    "add_embedded",
    "add_reload",
    "add_status",
]


def add_reload(sub: Commands) -> None:
    p = sub.add_parser(
        "reload",
        help="reload every live worker's plugins",
        description=(
            "Send a reload to every live worker; each re-reads its plugins' configuration, "
            "publishes its agent configs and acknowledges. Exit 1 unless all succeed."
        ),
    )
    p.add_argument("--reason", default="", help="recorded with the reload")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for acks (10)")
    p.add_argument("--json", action="store_true")
    add_redis_options(p)
    p.set_defaults(func=lambda a: asyncio.run(_reload(a)))


def add_cancel(sub: Commands) -> None:
    p = sub.add_parser(
        "cancel",
        help="cancel a task and everything it started",
        description=(
            "Cancel MESSAGE_ID (breadth-first through the tasks it started), or with no "
            "MESSAGE_ID every task of SESSION and the messages queued behind them."
        ),
    )
    p.add_argument("session", metavar="SESSION")
    p.add_argument("message_id", metavar="MESSAGE_ID", nargs="?")
    p.add_argument("--reason", default=None)
    p.add_argument("--mode", choices=["graceful", "force"], default="graceful")
    add_redis_options(p)
    p.set_defaults(func=lambda a: asyncio.run(_cancel(a)))


def add_dlq(sub: Commands) -> None:
    p = sub.add_parser(
        "dlq",
        help="dead letters: list them, replay one",
        description=(
            "Tasks no worker could decode or finish. `list` shows the newest; `replay ID` "
            "sends that task again as a new message of its session."
        ),
    )
    p.add_argument("action", choices=["list", "replay"])
    p.add_argument("entry_id", metavar="ENTRY_ID", nargs="?")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--json", action="store_true")
    add_redis_options(p)
    p.set_defaults(func=lambda a: asyncio.run(_dlq(a)))


def add_status(sub: Commands) -> None:
    p = sub.add_parser(
        "status",
        help="workers, agent types, queues",
        description="Live workers, and per agent type: queue length and pending.",
    )
    p.add_argument("--consumer-group", default="agent_engines")
    p.add_argument("--json", action="store_true")
    add_redis_options(p)
    p.set_defaults(func=lambda a: asyncio.run(_status(a)))


def add_acl(sub: Commands) -> None:
    p = sub.add_parser(
        "acl",
        help="print least-privilege Redis ACL rules for workers, clients and readers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Print Redis ACL users (ACL SETUSER commands for redis-cli, ACL file lines, or "
            "JSON) for the namespace and key schema of the usual settings:\n\n"
            "  worker  everything a worker runs (streams, records, scripts, leases, LangGraph\n"
            "          checkpoints, ADK sessions, byway dlq) on the namespace's keys only;\n"
            "          no FLUSHALL, FLUSHDB, CONFIG, KEYS, DEBUG, ACL, SHUTDOWN, MONITOR...\n"
            "  client  send, stream, resume, cancel: XADD to control streams and reads of\n"
            "          session streams, execution records and worker leases; no scripts, no\n"
            "          write to a record or a session stream (GatewayClient, byway send and\n"
            "          byway cancel then work without scripts)\n"
            "  reader  byway status and dashboards: read-only commands (and SCAN)\n\n"
            "Redis 7 separates read (%R~) from write (%W~) key permissions; Redis 6.2\n"
            "cannot, so under --redis-version 6.2 a client may also write what it reads.\n"
            "The rules set no password unless --password-stdin gives one (stored as its\n"
            "SHA-256). See docs/operations.md, 'Redis ACLs'."
        ),
    )
    p.add_argument("--role", choices=["worker", "client", "reader"], help="one role (default: all)")
    p.add_argument("--user", metavar="NAME", help="the user's name (default: byway-ROLE)")
    p.add_argument(
        "--format",
        choices=["setuser", "aclfile", "json"],
        default="setuser",
        help="ACL SETUSER commands (default), lines for an ACL file, or JSON",
    )
    p.add_argument(
        "--redis-version",
        choices=["7.2", "7.0", "6.2"],
        default="7.2",
        help="7.2 (and later, default), 7.0 (no CLIENT SETINFO) or 6.2 (no %%R~/%%W~)",
    )
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the user's password from the first line of stdin (printed as #SHA256)",
    )
    add_redis_options(p)
    p.set_defaults(func=_cmd_acl)


def add_demo(sub: Commands) -> None:
    p = sub.add_parser(
        "demo",
        help="run the demo on the embedded Redis",
        description=(
            "Start the embedded Redis and a worker process, send a task and stream its answer."
        ),
    )
    p.add_argument("--question", default="What does Byway do?")
    add_redis_options(p)
    p.set_defaults(func=lambda a: run_module("byway.demo", a))


def add_bench(sub: Commands) -> None:
    p = sub.add_parser("bench", help="measure throughput and latency beside the redis-py floor")
    from byway.bench import add_arguments as add_bench_arguments

    add_bench_arguments(p)
    add_redis_options(p)
    p.set_defaults(func=lambda a: run_module("byway.bench", a))


def add_embedded(sub: Commands) -> None:
    p = sub.add_parser("embedded", help="the machine's embedded Redis: start, stop, status")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=_cmd_embedded)


async def _reload(args: argparse.Namespace) -> int:
    from byway.client import GatewayClient

    async with GatewayClient(settings=settings_of(args)) as client:
        acks = await client.reload_plugins(reason=args.reason, timeout=args.timeout)
        workers = len(await client.registry.list_workers())
    if args.json:
        import msgspec

        print(json.dumps([msgspec.to_builtins(a) for a in acks], indent=2))
    else:
        for ack in acks:
            change = f"{ack.version_before or '-'} -> {ack.version_after or '-'}"
            print(f"{ack.worker_id:36} {ack.status:6} {change} {ack.error}")
        print(f"{len(acks)} of {workers} worker(s) answered")
    return 0 if len(acks) == workers and all(a.status == "ok" for a in acks) else 1


async def _cancel(args: argparse.Namespace) -> int:
    from byway.client import GatewayClient
    from byway.flow import CancelOutcome

    outcome: CancelOutcome
    async with GatewayClient(settings=settings_of(args)) as client:
        if args.message_id:
            outcome = await client.cancel_task(
                args.message_id, args.session, reason=args.reason, cancel_mode=args.mode
            )
        else:
            outcome = await client.cancel_session(
                args.session, reason=args.reason, cancel_mode=args.mode
            )
    print(json.dumps({"cancelled": outcome.message_ids}))
    return 0


async def _dlq(args: argparse.Namespace) -> int:
    from byway.client import GatewayClient

    async with GatewayClient(settings=settings_of(args)) as client:
        if args.action == "replay":
            if not args.entry_id:
                print("error: dlq replay needs an ENTRY_ID (see `byway dlq list`)", file=sys.stderr)
                return 2
            sent = await client.replay_dead_letter(args.entry_id)
            print(
                json.dumps(
                    {
                        "replayed": args.entry_id,
                        "session_id": sent.session_id,
                        "message_id": sent.message_id,
                    }
                )
            )
            return 0
        letters = await client.dead_letters(args.count)
    if args.json:
        print(json.dumps(letters, indent=2))
    else:
        for letter in letters:
            # what a writer put there reaches a terminal: no control characters
            line = f"{letter['id']}  {letter.get('stream', '')}  {letter.get('reason', '')}"
            print(escape_controls(line))
        print(f"{len(letters)} dead letter(s)")
    return 0


async def _status(args: argparse.Namespace) -> int:
    from byway.client import GatewayClient
    from byway.status import collect_status, print_status

    async with GatewayClient(settings=settings_of(args)) as client:
        report = await collect_status(client, group=args.consumer_group)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_status(report, client.settings.describe())
    return 0


def _cmd_acl(args: argparse.Namespace) -> int:
    from byway import acl

    if args.user and not args.role:
        print("error: --user names one user: give its --role too", file=sys.stderr)
        return 2
    password = None
    if args.password_stdin:
        password = acl.password_hash(sys.stdin.readline().rstrip("\r\n"))
    keys = settings_of(args).keys
    users = [
        acl.acl_user(
            role,
            keys,
            user=args.user,
            redis_version=args.redis_version,
            password_sha256=password,
        )
        for role in ([args.role] if args.role else acl.ROLES)
    ]
    print(acl.render(users, keys, fmt=args.format, redis_version=args.redis_version))
    return 0


def _cmd_embedded(args: argparse.Namespace) -> int:
    from byway import embedded

    if args.action == "start":
        print(embedded.ensure_embedded_redis())
    elif args.action == "stop":
        print("stopped" if embedded.stop_embedded_redis() else "not running")
    else:
        sock = embedded.socket_path()
        running = embedded._ping(sock)
        print(f"{'running' if running else 'not running'}: unix://{sock}")
    return 0
