"""Commands that installed packages add to ``byway``: the ``byway.cli`` entry points.

A package declares one entry point per command, named after it, in the group
``byway.cli``::

    [project.entry-points."byway.cli"]
    history = "byway_history_postgres._cli:add_history_command"

The entry point is a callable that ``byway`` calls with its sub-command parsers (what
``ArgumentParser.add_subparsers()`` returns) while it builds its parser. It adds the
command under the entry point's name (``subparsers.add_parser(NAME, ...)``) and sets the
function that runs it (``set_defaults(func=run)``; ``run(args)`` returns the exit code).
The core imports no plugin package: ``byway history`` (the Postgres history plugin)
arrives this way.

Commands are added in name order, after every built-in one. A name that is already a
command (a built-in one, say) is not replaced. A command that cannot be loaded (its package misses a dependency, or
its entry point is broken) is listed all the same and, when run, prints one ``error:``
line saying why and exits 2, so one broken package never breaks the other commands. The
commands the core's extras provide are listed even when their package is not installed,
and say how to install it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from byway._cli.common import Commands
from byway._log import get_logger

__all__ = ["CLI_GROUP", "add_plugin_commands"]

CLI_GROUP = "byway.cli"
log = get_logger("byway.cli")


@dataclass(frozen=True, slots=True)
class _Known:
    """A command one of the core's extras installs: listed before it is installed."""

    help: str
    description: str
    missing: str  # what ``byway NAME`` says when its package is not installed


KNOWN = {
    "history": _Known(
        help="a session's history, or a user's sessions (Postgres history plugin)",
        description=(
            "SESSION's turns (newest first; --tree adds its call tree, every execution with "
            "its state transitions), or with --user U that user's sessions, most recent first."
        ),
        missing="byway history reads the Postgres history plugin's tables: "
        'pip install "byway[history-postgres]"',
    ),
    "serve": _Known(
        help="the HTTP/SSE front door: native API and the installed packages' routes",
        description="Serve Byway over HTTP (send, SSE streams, resume, cancel; the LangGraph "
        "Server API with byway-langgraph).",
        missing='byway serve is the HTTP front door in byway-server: pip install "byway[server]"',
    ),
}


def add_plugin_commands(sub: Commands) -> None:
    """Add the commands of the ``byway.cli`` entry points, and the known ones that are
    not installed."""
    found = sorted(entry_points(group=CLI_GROUP), key=lambda e: e.name)
    for ep in found:
        if ep.name in sub.choices:
            log.warning("command %s (%s) skipped: byway has a command of that name", ep.name,
                        ep.value)  # fmt: skip
            continue
        why = _add(sub, ep)
        if why:
            _unavailable(sub, ep.name, why)
    for name in sorted(KNOWN.keys() - {ep.name for ep in found}):
        _unavailable(sub, name, KNOWN[name].missing)


def _add(sub: Commands, ep: EntryPoint) -> str:
    """Add ``ep``'s command; what went wrong ("" when nothing did)."""
    try:
        add = ep.load()
    except ImportError as exc:  # the package, or a dependency of it, is not installed
        if ep.name in KNOWN:
            return KNOWN[ep.name].missing
        return f"byway {ep.name} ({ep.value}) cannot be loaded: {type(exc).__name__}: {exc}"
    except Exception as exc:
        return f"byway {ep.name} ({ep.value}) failed to load: {type(exc).__name__}: {exc}"
    if not callable(add):
        return f"byway {ep.name} ({ep.value}): expected a callable, got {add!r}"
    try:
        add(sub)
    except Exception as exc:
        return f"byway {ep.name} ({ep.value}) failed to add it: {type(exc).__name__}: {exc}"
    if ep.name not in sub.choices:
        return f"byway {ep.name} ({ep.value}) added no command named {ep.name!r}"
    return ""


def _unavailable(sub: Commands, name: str, why: str) -> None:
    """``byway NAME ...``, whatever follows: one ``error:`` line saying ``why``, exit 2."""

    def run(args: argparse.Namespace) -> int:
        print(f"error: {why}", file=sys.stderr)
        return 2

    parser = sub.choices.get(name)
    if parser is None:  # takes every argument as it is ("\0": no option prefix)
        known = KNOWN.get(name)
        parser = sub.add_parser(
            name,
            help=known.help if known else f"(unavailable: {why})",
            description=known.description if known else None,
            add_help=False,
            prefix_chars="\0",
        )
        parser.add_argument("arguments", nargs=argparse.REMAINDER)
    parser.set_defaults(func=run)
