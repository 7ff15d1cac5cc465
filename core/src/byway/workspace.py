"""Workspaces: a scratch directory on the worker's disk per session, and per task below it.

``context.workspace`` is the running task's directory, ``context.session_workspace`` its
session's; both are created on first access (a task that never asks costs nothing) with
mode 0o700, under the worker's root (``run_worker(workspace_dir=...)``,
``byway worker --workspace``, ``$BYWAY_WORKSPACE_DIR``; default
``<tempdir>/byway-workspace-<uid>``)::

    <root>/sessions/<session>/                  the session's workspace
    <root>/sessions/<session>/tasks/<task>/     the task's (context.workspace)

``<session>`` and ``<task>`` are never the ids read from the wire: each is a readable slug
of the id (letters, digits, ``_``, ``-``; at most 32) and 16 hex digits of its SHA-256
(:func:`path_part`), so no id (``../..``, an absolute path, NUL, 256 characters) names
a path outside the root, and two ids never share a directory.

Retention: a task's directory is removed when the task ends (not when it suspends: a
resume on this worker finds it), unless ``keep_tasks``; a session's is removed once no
task of it has used or ended with a workspace here for ``session_idle_seconds`` (a sweep
when a task ends, at most every few minutes, the first after startup). Removal never
follows a symlink: a link planted in a workspace is removed, not what it points to.

A workspace is local to the worker that ran the task: a resumed task may run on another
worker and find its directory empty. What must survive goes to durable storage, its URL
to the session with ``emit_artifact``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from byway._log import get_logger
from byway.errors import ConfigurationError, WorkerError

__all__ = ["WorkspacePolicy", "Workspaces", "default_workspace_root", "path_part"]

log = get_logger("byway.workspace")

ENV_DIR = "BYWAY_WORKSPACE_DIR"
ENV_KEEP = "BYWAY_WORKSPACE_KEEP_TASKS"
ENV_IDLE = "BYWAY_WORKSPACE_SESSION_IDLE_HOURS"

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_SLUG_MAX = 32
_MODE = 0o700


def default_workspace_root() -> Path:
    """``<tempdir>/byway-workspace-<uid>``: one root per user of the machine."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"byway-workspace-{uid}"


#: what :func:`path_part` makes: the only names the sweep removes
_PART_RE = re.compile(rf"[A-Za-z0-9_-]{{0,{_SLUG_MAX}}}-[0-9a-f]{{16}}")


def path_part(field_name: str, wire_id: str) -> str:
    """The directory name of ``wire_id``: a safe slug and a SHA-256 prefix, never the id."""
    if not isinstance(wire_id, str) or not wire_id:
        raise WorkerError(f"{field_name}: expected a non-empty id, got {wire_id!r}")
    digest = hashlib.sha256(wire_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    slug = _UNSAFE.sub("_", wire_id)[:_SLUG_MAX].strip("_") or "id"
    return f"{slug}-{digest}"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class WorkspacePolicy:
    """Where workspaces live and how long they are kept."""

    root: Path = field(default_factory=default_workspace_root)
    #: keep each task's directory after the task ends (for debugging)
    keep_tasks: bool = False
    #: a session's directory is removed once idle this long
    session_idle_seconds: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if not isinstance(self.root, (str, os.PathLike)) or not os.fspath(self.root):
            raise ConfigurationError(f"workspace_dir: expected a directory, got {self.root!r}")
        object.__setattr__(self, "root", Path(self.root).expanduser().absolute())
        if not self.session_idle_seconds > 0:
            raise ConfigurationError(
                f"session_idle_seconds: expected a positive number, got {self.session_idle_seconds}"
            )

    @classmethod
    def from_env(cls, root: str | os.PathLike[str] | None = None) -> WorkspacePolicy:
        """``root`` if given, else ``$BYWAY_WORKSPACE_DIR``, else the default; keep and idle
        time from ``$BYWAY_WORKSPACE_KEEP_TASKS`` and ``$BYWAY_WORKSPACE_SESSION_IDLE_HOURS``."""
        where = root if root is not None else (os.environ.get(ENV_DIR) or None)
        raw = os.environ.get(ENV_IDLE, "").strip()
        try:
            hours = float(raw) if raw else 24.0
        except ValueError:
            raise ConfigurationError(
                f"{ENV_IDLE}: expected a number of hours, got {raw!r}"
            ) from None
        if not hours > 0:
            raise ConfigurationError(f"{ENV_IDLE}: expected a positive number, got {raw!r}")
        return cls(
            root=Path(where) if where is not None else default_workspace_root(),
            keep_tasks=_env_flag(ENV_KEEP),
            session_idle_seconds=hours * 3600.0,
        )


def _ensure_dir(path: Path) -> None:
    """Create ``path`` (mode 0o700) unless it exists; refuse anything but a real directory
    in its place (a symlink planted there would lead outside the root)."""
    try:
        os.mkdir(path, _MODE)
        os.chmod(path, _MODE)  # whatever the umask
    except FileExistsError:
        pass
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise WorkerError(f"workspace: {path} is not a directory (a symlink?); not using it")


def remove_tree(path: Path, root: Path) -> None:
    """Remove ``path`` (below ``root``) without following a symlink on the way or inside.

    Every component from ``root`` down must be a real directory; the tree itself is
    removed by :func:`shutil.rmtree`, which unlinks symlinks rather than following them.
    """
    rel = path.relative_to(root)  # ValueError: not below the root
    current = root
    for part in rel.parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            os.unlink(current)  # the link goes, not what it points to
            return
        if not stat.S_ISDIR(mode):
            os.unlink(current)
            return
    shutil.rmtree(path, ignore_errors=False)


class Workspaces:
    """The workspaces of one worker: created on demand, removed by the policy."""

    def __init__(self, policy: WorkspacePolicy | None = None) -> None:
        self.policy = policy if policy is not None else WorkspacePolicy.from_env()
        self.root = self.policy.root
        self._sessions = self.root / "sessions"
        #: task directories created (or found) by runs not yet finished: (session, task)
        self._tasks: dict[tuple[str, str], Path] = {}
        #: session parts with a run using its workspace now (the sweep leaves them)
        self._live: Counter[str] = Counter()
        self._root_ready = False
        self._last_sweep = float("-inf")
        #: how often the idle sweep runs (at most)
        self.sweep_every = min(max(self.policy.session_idle_seconds / 4, 1.0), 600.0)

    def _ensure_root(self) -> None:
        if self._root_ready:
            return
        self.root.mkdir(mode=_MODE, parents=True, exist_ok=True)
        st = os.stat(self.root)
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise WorkerError(
                f"workspace_dir: {self.root} belongs to another user; choose a directory of "
                "your own (--workspace, BYWAY_WORKSPACE_DIR)"
            )
        _ensure_dir(self._sessions)
        self._root_ready = True

    def session_dir(self, session_id: str) -> Path:
        """The session's directory, created if needed."""
        self._ensure_root()
        path = self._sessions / path_part("session_id", session_id)
        _ensure_dir(path)
        os.utime(path)  # in use: not idle
        return path

    def task_dir(self, session_id: str, message_id: str) -> Path:
        """The task's directory below its session's, created on the first call of a run."""
        key = (session_id, message_id)
        found = self._tasks.get(key)
        if found is not None:
            with contextlib.suppress(FileNotFoundError):
                os.utime(found.parent.parent)  # its session is in use: not idle
            return found
        session = self.session_dir(session_id)
        tasks = session / "tasks"
        _ensure_dir(tasks)
        path = tasks / path_part("message_id", message_id)
        _ensure_dir(path)
        self._tasks[key] = path
        self._live[session.name] += 1
        return path

    async def finish(self, session_id: str, message_id: str, *, ended: bool) -> None:
        """A run of the task is over: remove its directory if it ``ended`` (not when it
        suspended) and the policy does not keep it; sweep idle sessions when due. Never
        raises (a removal that fails is logged)."""
        path = self._tasks.pop((session_id, message_id), None)
        due = time.monotonic() - self._last_sweep >= self.sweep_every
        if path is None and not due:
            return
        if path is not None:
            part = path.parent.parent.name
            self._live[part] -= 1
            if self._live[part] <= 0:
                del self._live[part]
        if due:
            self._last_sweep = time.monotonic()
        remove = path if path is not None and ended and not self.policy.keep_tasks else None
        live = set(self._live) if due else None
        try:
            await asyncio.to_thread(self._finish_sync, path, remove, live)
        except Exception as exc:
            log.warning("workspace cleanup failed: %s: %s", type(exc).__name__, exc)

    def _finish_sync(self, used: Path | None, remove: Path | None, live: set[str] | None) -> None:
        if remove is not None:
            remove_tree(remove, self.root)
        if used is not None:
            try:
                os.utime(used.parent.parent)
            except FileNotFoundError:
                pass
        if live is not None:
            self.sweep(live=live)

    def sweep(self, now: float | None = None, *, live: set[str] | None = None) -> int:
        """Remove the session directories idle longer than the policy allows (except
        ``live`` ones, default: those a run uses now); how many. Blocking: call it in a
        thread from async code."""
        now = time.time() if now is None else now
        live = set(self._live) if live is None else live
        limit = now - self.policy.session_idle_seconds
        removed = 0
        try:
            entries = list(os.scandir(self._sessions))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name in live or not _PART_RE.fullmatch(entry.name):
                continue  # in use, or not a directory this module named: not ours to remove
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= limit:
                    continue
                remove_tree(Path(entry.path), self.root)
                removed += 1
            except OSError as exc:
                log.warning("workspace sweep: %s: %s", entry.name, exc)
        if removed:
            log.info("workspace sweep: removed %d idle session workspace(s)", removed)
        return removed
