"""The Lua scripts: loaded from ``lua/*.lua`` once, called by their SHA1 (EVALSHA).

A ``.lua`` file names every KEY and ARGV in its header. A line ``--@include lib.lua``
stands for the shared library (``lua/lib.lua``), whose text replaces it. The typed
wrappers beside this module (``byway.store.start`` and the others) are what callers use:
each builds a script's KEYS and ARGV from named fields and decodes its reply.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import msgspec
from redis.exceptions import NoScriptError

__all__ = ["Call", "Script", "execute", "handed_on", "load", "raw", "source", "text"]

_QUEUED = "_byway_scripts"  # attribute of a pipeline: the scripts queued in it
_INCLUDE = "--@include "


class Call(Protocol):
    """The arguments of one script call, as named fields: its KEYS and ARGV lists."""

    def keys(self) -> list[str]: ...

    def argv(self) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script called by its SHA1 (EVALSHA): 40 bytes on the wire instead of the text.

    Redis forgets scripts on restart or SCRIPT FLUSH. A direct call then falls back to
    EVAL, which loads it. In a pipeline, :func:`execute` finds the script calls that
    answered NOSCRIPT (they did not run) and runs them again with EVAL.
    """

    source: str
    body: bytes = b""
    sha: str = ""

    def __post_init__(self) -> None:
        body = self.source.encode()
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "sha", hashlib.sha1(body).hexdigest())

    async def run(self, redis: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await redis.eval(self.body, len(keys), *keys, *args)

    def queue(self, pipe: Any, keys: list[str], args: list[Any]) -> None:
        queued = getattr(pipe, _QUEUED, None)
        if queued is None:
            queued = []
            setattr(pipe, _QUEUED, queued)
        queued.append((len(pipe), self, keys, args))
        # the raw command: a cluster pipeline refuses its evalsha() method, but routes a
        # raw EVALSHA by its first key's slot
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)

    async def call(self, redis: Any, call: Call) -> Any:
        """Run the script with ``call``'s KEYS and ARGV; the raw reply."""
        return await self.run(redis, call.keys(), call.argv())

    def queue_call(self, pipe: Any, call: Call) -> None:
        """Queue the script with ``call``'s KEYS and ARGV in ``pipe`` (see :func:`execute`)."""
        self.queue(pipe, call.keys(), call.argv())


async def execute(redis: Any, pipe: Any, *, raise_on_error: bool = False) -> list[Any]:
    """Execute ``pipe``; script calls that met NOSCRIPT run again (loading the script).

    Commands after a NOSCRIPT script call in the same pipeline have run by then; every
    pipeline Byway builds keeps that harmless (a script is re-run, never the others).
    """
    queued = getattr(pipe, _QUEUED, None) or []
    setattr(pipe, _QUEUED, None)
    results: list[Any] = await pipe.execute(raise_on_error=False)
    for position, script, keys, args in queued:
        if isinstance(results[position], NoScriptError):
            results[position] = await script.run(redis, keys, args)
    if raise_on_error:
        for item in results:
            if isinstance(item, Exception):
                raise item
    return results


def source(name: str) -> str:
    """The text of ``lua/<name>``, its includes replaced by the files they name."""
    lua = (resources.files(__package__) / "lua" / name).read_text(encoding="utf-8")
    lines = []
    for line in lua.splitlines(keepends=True):
        if line.startswith(_INCLUDE):
            lines.append(source(line[len(_INCLUDE) :].strip()))
        else:
            lines.append(line)
    return "".join(lines)


def load(name: str) -> Script:
    """The script in ``lua/<name>.lua`` (read once: callers load at import)."""
    return Script(source(f"{name}.lua"))


def text(value: Any) -> str:
    """A reply item as text (bytes from Redis, or already a string; '' for nil)."""
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


def raw(value: Any) -> bytes:
    """A reply item as bytes ('' for nil)."""
    if isinstance(value, bytes):
        return value
    return b"" if value is None else str(value).encode()


def handed_on(item: Any) -> tuple[str, bytes] | None:
    """(stream, command) of a session queue item a script handed on (``{"stream",
    "data", "message_id"}``, for the caller to forward), or None for ''."""
    if not item:
        return None
    decoded = msgspec.json.decode(item)
    return str(decoded["stream"]), str(decoded["data"]).encode()
