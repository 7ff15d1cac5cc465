"""Recovery of a dead worker's tasks: see :mod:`byway.runtime.recovery` (kept here for
the import path ``byway.recovery``)."""

from __future__ import annotations

from byway.runtime.recovery import Recovery

__all__ = ["Recovery"]
