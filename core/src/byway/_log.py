"""Byway's loggers: a value read from the wire cannot forge a log line or leak a password.

Session ids, message ids, agent types, cancel reasons and error messages come from Redis,
written by whoever can XADD; a ``\\n`` in one of them would start a line of its own in a
log file (a forged "task completed", say), and an ANSI escape would rewrite a terminal.
Every module of Byway (core, adapters, plugins) takes its logger from :func:`get_logger`,
which attaches :class:`SafeRecordFilter`: before a record reaches any handler, control
characters in its message, its arguments and its exception's message are escaped
(``\\n`` → ``\\\\n``, ESC → ``\\\\x1b``, U+2028 → ``\\\\u2028``) and passwords in URLs are
masked (:func:`byway._redact.redact_text`).

A logging filter applies to the records logged on its own logger only (not to those its
children propagate), so the filter sits on each Byway logger, and nothing of the
application's logging (root logger, handlers, record factory) is touched.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from byway._redact import redact_text

__all__ = ["SafeRecordFilter", "escape_controls", "get_logger"]

#: C0 controls, DEL, C1 controls (NEL among them) and the Unicode line/paragraph separators:
#: every character ``str.splitlines`` breaks on, and the terminal escapes
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})

_PLAIN = (int, float, bool, type(None), bytes)  # formatted the same, and safely, as they are


def escape_controls(text: str) -> str:
    """``text`` on one line: control characters and line separators as escapes."""
    return text.translate(_ESCAPES) if _UNSAFE.search(text) else text


def _clean(text: str) -> str:
    return redact_text(escape_controls(text))


def _clean_arg(arg: Any) -> Any:
    if isinstance(arg, str):
        return _clean(arg)
    if isinstance(arg, _PLAIN):
        return arg
    # an object (an exception, an id type) is formatted through str(); replaced by its
    # cleaned text only when that differs, so that %r of a clean object stays its repr
    try:
        text = str(arg)
    except Exception:
        return arg  # formatting it fails the same way: logging reports that itself
    cleaned = _clean(text)
    return arg if cleaned == text else cleaned


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__]
    return seen


def _safe_traceback(
    exc_info: tuple[type[BaseException], BaseException, TracebackType | None],
) -> str:
    """The traceback ``logging.Formatter.formatException`` prints, with the message line
    of each exception in the chain escaped and redacted (the frames are our code's)."""
    text = "".join(traceback.format_exception(*exc_info)).rstrip("\n")
    for exc in _chain(exc_info[1]):
        only = "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")
        cleaned = _clean(only)
        if cleaned != only:
            text = text.replace(only, cleaned)
    return text


class SafeRecordFilter(logging.Filter):
    """Escapes control characters and masks passwords in a record's message, arguments
    and exception text, in place; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        record.msg = _clean(msg) if isinstance(msg, str) else _clean_arg(msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_clean_arg(a) for a in args)
        elif isinstance(args, Mapping):
            record.args = {k: _clean_arg(v) for k, v in args.items()}
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = _safe_traceback(record.exc_info)
        return True


_FILTER = SafeRecordFilter()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with :class:`SafeRecordFilter` attached (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, SafeRecordFilter) for f in logger.filters):
        logger.addFilter(_FILTER)
    return logger
