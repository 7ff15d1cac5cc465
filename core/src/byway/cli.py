"""The ``byway`` command line: worker, send, stream, status, history, acl, demo, bench,
embedded.

This module builds the parser and runs a command; the commands live in ``byway._cli``
(``worker``, ``session``: send, stream, resume; ``ops``: reload, cancel, dlq, status,
acl, demo, bench, embedded), and installed packages add theirs through the ``byway.cli``
entry points (``byway._cli.plugins``; ``byway history`` comes from the Postgres history
plugin).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from redis.exceptions import RedisError

from byway._cli import ops, session
from byway._cli.plugins import add_plugin_commands
from byway._cli.render import render_event
from byway._cli.worker import add_worker
from byway._redact import redact_text
from byway.errors import BywayError

__all__ = ["main", "render_event"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="byway",
        description="Distributed scheduling engine for AI agents on Redis Streams.",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("BYWAY_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO (default), WARNING, ERROR",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_worker(sub)
    ops.add_reload(sub)
    session.add_send(sub)
    session.add_stream(sub)
    session.add_resume(sub)
    ops.add_cancel(sub)
    ops.add_dlq(sub)
    ops.add_status(sub)
    ops.add_acl(sub)
    ops.add_demo(sub)
    ops.add_bench(sub)
    ops.add_embedded(sub)
    add_plugin_commands(sub)  # last: byway history, and what other packages add
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except BywayError as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except RedisError as exc:  # one line, password masked, rather than a traceback
        print(f"error: redis: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
