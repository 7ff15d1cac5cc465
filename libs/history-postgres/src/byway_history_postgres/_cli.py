"""``byway history SESSION`` and ``byway history --user U``: read what the plugin wrote.

The core's command line finds :func:`add_history_command` through the ``byway.cli`` entry
point ``history``; it adds the command's arguments and runs :func:`history_command`. It only
reads: it never creates or migrates the tables, and a database it cannot reach, or one
without them, is one ``error:`` line and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import asyncpg
import msgspec

from byway._redact import redact_text
from byway_history_postgres._plugin import DSN_ENV, PostgresHistorySettings
from byway_history_postgres._store import PostgresHistoryStore
from byway_history_postgres._types import ExecutionNode, HistoryUnavailableError

__all__ = ["add_history_command", "history_command"]


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _text(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def add_history_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``byway history`` to the core's command line (the ``byway.cli`` entry point)."""
    p = subparsers.add_parser(
        "history",
        help="a session's history, or a user's sessions (Postgres history plugin)",
        description=(
            "SESSION's turns (newest first; --tree adds its call tree, every execution with "
            "its state transitions), or with --user U that user's sessions, most recent first."
        ),
    )
    p.add_argument("session", metavar="SESSION", nargs="?")
    p.add_argument("--user", metavar="U", help="list this user's sessions instead")
    p.add_argument("--limit", type=int, default=50, help="turns or sessions per page (50)")
    p.add_argument("--cursor", help="the next page (printed after a full page)")
    p.add_argument("--oldest-first", action="store_true", help="a session's turns oldest first")
    p.add_argument("--tree", action="store_true", help="also the session's call tree")
    p.add_argument("--dsn", help="PostgreSQL URL or 'auto' (default: $BYWAY_HISTORY_POSTGRES_DSN)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=history_command)


NO_TABLES = "no Byway history tables in this database (run a worker with the plugin first)"


def history_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``byway history``; returns the exit code (2: bad arguments or no DSN; 1:
    PostgreSQL unreachable, refusing, or without the tables)."""
    dsn = args.dsn or os.environ.get(DSN_ENV, "")
    if not dsn:
        print(f"error: pass --dsn or set {DSN_ENV}", file=sys.stderr)
        return 2
    if bool(args.session) == bool(args.user):
        print("error: give a SESSION or --user U (one of them)", file=sys.stderr)
        return 2
    if not isinstance(args.limit, int) or args.limit < 1:
        print(f"error: --limit: expected a positive integer, got {args.limit!r}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args, PostgresHistorySettings(dsn=dsn), out or sys.stdout))
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        print(
            f"error: PostgreSQL: {redact_text(str(exc), dsn) or type(exc).__name__}",
            file=sys.stderr,
        )
    except HistoryUnavailableError as exc:
        print(f"error: {redact_text(str(exc), dsn)}", file=sys.stderr)
    return 1


async def _run(args: argparse.Namespace, settings: PostgresHistorySettings, out: TextIO) -> int:
    store = PostgresHistoryStore(await settings.resolve_dsn())
    await store.open(migrate=False)
    try:
        if not await store.schema_version():
            print(f"error: {NO_TABLES}", file=sys.stderr)
            return 1
        if args.user:
            await _sessions(store, args, out)
        else:
            await _session(store, args, out)
    finally:
        await store.close()
    return 0


async def _sessions(store: PostgresHistoryStore, args: argparse.Namespace, out: TextIO) -> None:
    page = await store.sessions(args.user, limit=args.limit, cursor=args.cursor)
    if args.json:
        out.write(json.dumps(msgspec.to_builtins(page), ensure_ascii=False) + "\n")
        return
    for s in page.sessions:
        out.write(
            f"{_time(s.updated_at)}  {s.session_id}  {','.join(s.agent_types) or '-'}  "
            f"{s.messages} message(s)\n"
        )
    out.write(f"{len(page.sessions)} session(s) of {args.user}\n")
    if page.next_cursor:
        out.write(f"more: --cursor {page.next_cursor}\n")


async def _session(store: PostgresHistoryStore, args: argparse.Namespace, out: TextIO) -> None:
    page = await store.history(
        args.session, limit=args.limit, newest_first=not args.oldest_first, cursor=args.cursor
    )
    tree = await store.call_tree(args.session) if args.tree else []
    if args.json:
        body: dict[str, Any] = msgspec.to_builtins(page)
        if args.tree:
            body["call_tree"] = msgspec.to_builtins(tree)
        out.write(json.dumps(body, ensure_ascii=False) + "\n")
        return
    for e in page.entries:
        status = f"  [{e.status}]" if e.status else ""
        out.write(
            f"{_time(e.timestamp)}  {e.role:9}  {e.agent_type or '-'}  {_text(e.content)}{status}\n"
        )
    order = "oldest" if args.oldest_first else "newest"
    out.write(f"{len(page.entries)} turn(s) of {args.session}, {order} first\n")
    if page.next_cursor:
        out.write(f"more: --cursor {page.next_cursor}\n")
    for root in tree:
        _render_node(root, out, "")


def _render_node(node: ExecutionNode, out: TextIO, indent: str) -> None:
    out.write(f"{indent}{node.agent_type} {node.message_id} {node.status} ({node.execution_id})\n")
    for t in node.transitions:
        worker = f"  {t.worker_id}" if t.worker_id else ""
        detail = f"  {json.dumps(t.detail, ensure_ascii=False)}" if t.detail else ""
        out.write(f"{indent}  {_time(t.timestamp)}  {t.status}{worker}{detail}\n")
    for child in node.children:
        _render_node(child, out, indent + "    ")
