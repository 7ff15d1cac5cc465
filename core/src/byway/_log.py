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
application's logging (root logger, handlers, record factory) is touched — until the
application asks: :func:`setup_logging` configures a logger (the root by default) with
one handler, plain text or JSON lines (:class:`JsonFormatter`). A JSON line carries the
ids of the task in whose context it was logged (:func:`bind_task`, set by the worker
around each task's hooks and handler), whichever logger wrote it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from types import TracebackType
from typing import Any, TextIO

from byway._redact import redact_text

__all__ = [
    "JsonFormatter",
    "SafeRecordFilter",
    "bind_task",
    "escape_controls",
    "get_logger",
    "setup_logging",
    "task_fields",
]

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


# -- the task a line was logged in -------------------------------------------------------

#: the ids of the task running in this asyncio context (``bind_task``)
_TASK: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "byway_task_log_fields", default=None
)

#: what a JSON line says of its task, in this order
TASK_FIELDS = ("session_id", "message_id", "trace_id", "execution_id", "agent_type", "worker_id")


def bind_task(**ids: str) -> contextvars.Token[Mapping[str, str] | None]:
    """Tag the lines logged from now on in this context (this task and what it starts)
    with ``ids``; undo with ``_TASK.reset(token)`` (:func:`unbind_task`)."""
    return _TASK.set({k: v for k, v in ids.items() if v})


def unbind_task(token: contextvars.Token[Mapping[str, str] | None]) -> None:
    _TASK.reset(token)


def task_fields() -> Mapping[str, str]:
    """The ids bound in this context (empty outside a task)."""
    return _TASK.get() or {}


# -- formatting and setup ----------------------------------------------------------------

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def _jsonable(value: Any) -> Any:
    """``default=`` of the encoder: what JSON has no type for becomes its text."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``timestamp`` (UTC, ISO-8601), ``level``, ``logger``,
    ``message``, ``module``, ``function``, ``line``, ``exception`` when there is one, the
    ids of the task it was logged in, and the record's ``extra=`` fields. Never raises:
    a value JSON cannot hold is written as its ``str()``."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            return self._format(record)
        except Exception as exc:  # a log line never fails, whatever the record holds
            return json.dumps(
                {
                    "timestamp": self._timestamp(record),
                    "level": getattr(record, "levelname", "ERROR"),
                    "logger": str(getattr(record, "name", "")),
                    "message": redact_text(_jsonable(getattr(record, "msg", ""))),
                    "format_error": f"{type(exc).__name__}: {_jsonable(exc)}",
                }
            )

    @staticmethod
    def _timestamp(record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(getattr(record, "created", 0.0), tz=UTC)
        return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format
            message = f"{_jsonable(record.msg)} {_jsonable(record.args)}"
        data: dict[str, Any] = {
            "timestamp": self._timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(message),
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
        }
        data.update(task_fields())
        for key, value in record.__dict__.items():  # extra=: never over the fields above
            if key not in _STANDARD and not key.startswith("_") and key not in data:
                data[key] = redact_text(value) if isinstance(value, str) else value
        if record.exc_info:
            data["exception"] = record.exc_text or self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        try:
            line = json.dumps(data, default=_jsonable, ensure_ascii=False)
        except (TypeError, ValueError):  # a circular or oddly keyed extra
            line = json.dumps({k: v if k in _NATIVE_KEYS else _jsonable(v)
                               for k, v in data.items()}, ensure_ascii=False)  # fmt: skip
        # JSON allows U+2028/U+2029 raw; a line splitter does not
        return line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


_NATIVE_KEYS = frozenset({"level", "logger", "message", "module", "function", "line"})

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(
    name: str | None = None,
    level: int | str = logging.INFO,
    use_json: bool = False,
    log_file: str | os.PathLike[str] | None = None,
    *,
    stream: TextIO | None = None,
) -> logging.Logger:
    """Configure logger ``name`` (the root logger by default, so that every library's and
    the application's lines go through it) with one handler on ``stream`` (stderr):
    plain text, or JSON lines with ``use_json`` (:class:`JsonFormatter`). With
    ``log_file``, lines also go to that file (rotated at 10 MiB, 5 kept); none is written
    unless asked. Calling it again replaces the handlers of that logger (the last call
    wins); a named logger stops propagating to the root, so no line is written twice.
    Returns the logger."""
    logger = logging.getLogger(name)
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    formatter: logging.Formatter = JsonFormatter() if use_json else logging.Formatter(_TEXT_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if log_file is not None:
        handlers.append(
            RotatingFileHandler(
                log_file, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8"
            )
        )
    for handler in handlers:
        handler.setFormatter(formatter)
        if not use_json:  # every logger's text lines one line each, passwords masked
            handler.addFilter(_FILTER)
        logger.addHandler(handler)
    if name:
        logger.propagate = False
    return logger
