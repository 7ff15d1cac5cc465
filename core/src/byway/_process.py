"""Who a process is, so that a worker can tell a dead holder of its id from a live one.

A worker's lease names the process that holds it: host name, pid, and on Linux the boot
id, the pid namespace and the process's start time. A restarted worker (systemd, a pod
restart) finds the lease of its dead predecessor still live for up to a lease; it may take
it over at once only when that process is *provably* gone: the same host (same boot and
pid namespace, where known) and its pid no longer exists, or the pid now belongs to a
process that started at another time (the pid was reused, e.g. pid 1 in a restarted
container). Anything less certain leaves the lease alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass

__all__ = ["ProcessIdentity", "holder_is_dead", "stop_processes"]


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """What identifies one process on one running machine ('' / 0: not known here)."""

    hostname: str
    pid: int
    boot_id: str = ""
    pid_ns: str = ""
    start: int = 0

    @classmethod
    def current(cls, hostname: str) -> ProcessIdentity:
        pid = os.getpid()
        return cls(hostname, pid, _boot_id(), _pid_namespace(), start_time(pid))


def holder_is_dead(holder: ProcessIdentity, me: ProcessIdentity) -> bool:
    """Whether the process ``holder`` names is certainly not running any more."""
    if not holder.hostname or holder.hostname != me.hostname or holder.pid <= 0:
        return False  # another machine (or a lease that does not say): cannot know
    for theirs, ours in ((holder.boot_id, me.boot_id), (holder.pid_ns, me.pid_ns)):
        if theirs != ours and (theirs or ours):
            return False  # another boot, another pid namespace, or one side does not say
    if holder.pid == me.pid:
        # our own pid: an earlier process that had it (a restarted container), unless it
        # is this very process (two runners with one id in one process)
        return bool(holder.start and me.start and holder.start != me.start)
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists (another user's process): it may be the holder
    except (OverflowError, ValueError):
        return False  # no pid this machine can have: a lease not written by a worker
    now = start_time(holder.pid)
    return bool(holder.start and now and now != holder.start)  # the pid was reused


def start_time(pid: int) -> int:
    """When ``pid`` started, in clock ticks since boot (/proc/<pid>/stat field 22); 0 when
    not known (not Linux, or no such process)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return 0
    # the command name (field 2) is in parentheses and may hold spaces or ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22; fields[0] is field 3
    except (IndexError, ValueError):
        return 0


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def stop_processes(procs: list[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    """SIGTERM each of ``procs`` (started by the caller) by its pid, then SIGKILL those
    still running after ``grace`` seconds."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
