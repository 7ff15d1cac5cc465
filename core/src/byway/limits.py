"""Bounds on what one message may hold, so no writer can make Byway store or parse without end.

=============================  =========  ==========================================
setting (environment)          default    what it bounds
=============================  =========  ==========================================
``BYWAY_MAX_COMMAND_BYTES``    8 MiB      one command's JSON (content, payloads, metadata)
``BYWAY_MAX_EVENT_BYTES``      1 MiB      one event a task writes (a chunk, a final answer)
``BYWAY_MAX_HISTORY_BYTES``    64 KiB     one turn kept in a session's history (cut beyond)
``BYWAY_MAX_DEPTH``            64         nesting of arrays and objects in a message
=============================  =========  ==========================================

Ids (message, session, trace, agent type, ...) are at most 256 characters (see
:func:`byway.protocol.check_id`). A worker dead-letters a command over a limit; a client
refuses to send one, naming the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from byway.errors import ConfigurationError

__all__ = ["DEFAULT_MAX_COMMAND_BYTES", "DEFAULT_MAX_DEPTH", "MAX_ID_LENGTH", "Limits"]

#: longest id (message, session, trace, agent type, worker, group) on the wire
MAX_ID_LENGTH = 256
DEFAULT_MAX_COMMAND_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64

_ENV = {
    "max_command_bytes": "BYWAY_MAX_COMMAND_BYTES",
    "max_event_bytes": "BYWAY_MAX_EVENT_BYTES",
    "max_history_bytes": "BYWAY_MAX_HISTORY_BYTES",
    "max_depth": "BYWAY_MAX_DEPTH",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """The size limits of one client or worker (every field has a safe default)."""

    max_command_bytes: int = DEFAULT_MAX_COMMAND_BYTES
    max_event_bytes: int = 1024 * 1024
    max_history_bytes: int = 64 * 1024
    max_depth: int = DEFAULT_MAX_DEPTH

    def __post_init__(self) -> None:
        for name in _ENV:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{name}: expected a positive integer, got {value!r}")
        if self.max_depth > 512:
            raise ConfigurationError(f"max_depth: expected at most 512, got {self.max_depth}")

    @classmethod
    def from_env(cls) -> Limits:
        """Defaults, overridden by the ``BYWAY_MAX_*`` variables that are set."""
        values: dict[str, int] = {}
        for name, variable in _ENV.items():
            raw = os.environ.get(variable, "").strip()
            if not raw:
                continue
            try:
                values[name] = int(raw)
            except ValueError:
                raise ConfigurationError(f"{variable}: expected an integer, got {raw!r}") from None
            if values[name] < 1:
                raise ConfigurationError(f"{variable}: expected a positive integer, got {raw}")
        return cls(**values)
