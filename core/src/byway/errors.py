"""Byway's exception tree.

Every error Byway raises on purpose derives from :class:`BywayError`::

    BywayError
    ├── ConfigurationError      bad settings, URL or argument given to a public API
    ├── ProtocolError           a wire message that does not decode (names the field)
    ├── ConnectionError         Redis unreachable or the embedded server failed to start
    ├── RoutingError            no worker can take the message
    │   ├── NoOnlineWorkerError
    │   ├── SessionBusyError    the session runs a task and its strategy is reject
    │   └── ResumeRefusedError  no task waits for this answer (finished, wrong id...)
    ├── LimitExceededError      a call tree grew past its depth or fan-out limit, or a
    │                           message past a size limit (byway.limits)
    ├── WorkerError             a worker cannot start or keep running
    │   └── WorkerIdInUseError  another live process holds the worker id
    ├── TaskError               a task ended FAILED (raised to callers that wait on it)
    ├── TaskCancelledError      the task was cancelled (raised inside handlers)
    └── HttpClientError         an HTTP call failed (byway.discovery_http): status_code,
        │                       response_body
        ├── HttpRequestError    no answer (refused, reset, timed out)
        └── DiscoveryHttpClientError  no live instance, or every attempt failed
"""

from __future__ import annotations

__all__ = [
    "BywayError",
    "ConfigurationError",
    "ConnectionError",
    "LimitExceededError",
    "NoOnlineWorkerError",
    "ProtocolError",
    "ResumeRefusedError",
    "RoutingError",
    "SessionBusyError",
    "TaskCancelledError",
    "TaskError",
    "WorkerError",
    "WorkerIdInUseError",
]


class BywayError(Exception):
    """Root of every error Byway raises on purpose."""


class ConfigurationError(BywayError, ValueError):
    """A setting, URL or argument is not what Byway expects."""


class ProtocolError(BywayError, ValueError):
    """A command or event could not be decoded; the message names the field."""


class ConnectionError(BywayError):
    """Redis could not be reached, or the embedded server could not be started."""


class RoutingError(BywayError):
    """A message could not be routed to a worker."""


class NoOnlineWorkerError(RoutingError):
    """No live worker serves the target agent type (or the target worker is offline)."""


class SessionBusyError(RoutingError):
    """The session is running a task and the multitask strategy is ``reject``."""


class ResumeRefusedError(RoutingError):
    """An answer no task waits for: no such message in the session, the task finished,
    or it has no open question. ``status`` is the execution's (``UNKNOWN``: none)."""

    def __init__(self, message: str, *, status: str = "") -> None:
        super().__init__(message)
        self.status = status


class LimitExceededError(BywayError):
    """A call would exceed ``max_call_depth`` or ``max_fanout``, or a command, event, or
    ``context.state`` its size limit (:mod:`byway.limits`)."""


class WorkerError(BywayError):
    """A worker could not start or keep running."""


class WorkerIdInUseError(WorkerError):
    """Another live process holds this worker id's lease."""


class TaskError(BywayError):
    """A task ended FAILED; ``error_type`` and ``error_message`` say why."""

    def __init__(self, message: str, *, error_type: str = "", error_message: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.error_message = error_message


class TaskCancelledError(BywayError):
    """The task was cancelled; raised inside a handler that asked to be stopped."""
