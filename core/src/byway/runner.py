"""WorkerRunner and RunnerConfig, for the import path ``byway.runner``: the runner lives
in :mod:`byway.runtime.runner`, its configuration in :mod:`byway.config`."""

from __future__ import annotations

from byway.config import RunnerConfig
from byway.runtime.runner import WorkerRunner

__all__ = ["RunnerConfig", "WorkerRunner"]
