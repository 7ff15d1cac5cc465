"""LangGraph's own development server (``langgraph dev``), to compare ``byway serve``
against: a virtualenv of its own made on demand, a ``langgraph.json`` naming graph
files, and the server started on a free loopback port.

    python -m byway_langgraph.langgraph_dev          # makes the venv if needed, prints `langgraph`

``langgraph dev`` lives in its own virtualenv (never Byway's): it brings its own pinned
LangGraph, and the graph files it loads import only LangGraph and LangChain, so the same
file is served by ``byway worker`` on one side and by ``langgraph dev`` on the other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = [
    "REQUIREMENTS",
    "LangGraphDev",
    "default_venv",
    "ensure_langgraph_dev",
    "free_port",
    "running_langgraph_dev",
]

#: what the venv gets: versions that resolved together (langgraph-api 0.16.7 is the
#: server ``langgraph dev`` runs in memory)
REQUIREMENTS = (
    "langgraph-cli[inmem]==0.4.40",
    "langgraph-api==0.16.7",
    "langgraph-runtime-inmem==0.36.7",
    "langgraph==1.2.24",
    "langchain-core==1.8.3",
)

READY_TIMEOUT_S = 90.0
_STAMP = "byway-requirements.txt"
_API_LINE = re.compile(r"API: (?:\x1b\[[0-9;]*m)*(http://[^\s\x1b]+)")


def _say(message: str) -> None:
    print(f"langgraph dev: {message}", file=sys.stderr, flush=True)


def default_venv() -> Path:
    """``$XDG_CACHE_HOME/byway/langgraph-dev-<hash of the pins>`` (else ``~/.cache``)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()[:10]
    return cache / "byway" / f"langgraph-dev-{digest}"


def ensure_langgraph_dev(venv: Path | None = None) -> Path:
    """The ``langgraph`` executable of ``venv`` (default :func:`default_venv`), made first
    with :data:`REQUIREMENTS` when it is missing or was left half-made."""
    import fcntl

    venv = venv or default_venv()
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes at once: the second waits, then reuses
        return _ensure(venv)


def _ensure(venv: Path) -> Path:
    binary = venv / "bin" / "langgraph"
    stamp = venv / _STAMP
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if binary.exists() and stamp.exists() and stamp.read_text() == wanted:
        return binary
    _say(f"making its virtualenv at {venv} (pip install {' '.join(REQUIREMENTS)}; a minute)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", *REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    _say("virtualenv ready")
    return binary


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LangGraphDev:
    """A running ``langgraph dev`` process: its base URL and log file."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log

    def stop(self) -> None:
        """SIGTERM by pid (it started in a session of its own), then SIGKILL after 15 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait(proc: subprocess.Popen[bytes], log: Path, port: int) -> str:
    """The server's URL once ``/ok`` answers: the one it prints (it moves to another port
    by itself when the one asked for is taken)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    url = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"langgraph dev exited with {proc.returncode}:\n{tail}")
        if match := _API_LINE.search(log.read_text(errors="replace")):
            url = match.group(1).rstrip("/")
        if _answers(url):
            return url
        if time.monotonic() > deadline:
            raise TimeoutError(f"langgraph dev did not answer within {READY_TIMEOUT_S:.0f}s")
        time.sleep(0.2)


@contextlib.contextmanager
def running_langgraph_dev(
    binary: Path | str,
    graphs: Mapping[str, str],
    *,
    port: int | None = None,
    jobs: int = 10,
    env: Mapping[str, str] | None = None,
    workdir: Path | None = None,
) -> Iterator[LangGraphDev]:
    """Start ``binary dev`` serving ``graphs`` (graph id → ``/abs/file.py:attr``) from a
    fresh ``langgraph.json`` in ``workdir`` (default: a new temporary directory, where it
    also keeps its in-memory state's files), ``jobs`` runs at once; stopped on exit.

    Logs go to ``workdir/langgraph-dev.log``; tracing and analytics are off (no network)
    and its log level is WARNING, as ``byway serve``'s is in the bench.
    """
    workdir = workdir or Path(tempfile.mkdtemp(prefix="byway-langgraph-dev-"))
    config = workdir / "langgraph.json"
    config.write_text(json.dumps({"dependencies": ["."], "graphs": dict(graphs)}, indent=2))
    log = workdir / "langgraph-dev.log"
    port = port or free_port()
    argv = [str(binary), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1",
            "--port", str(port), "--n-jobs-per-worker", str(jobs), "--config", str(config),
            "--server-log-level", "WARNING"]  # fmt: skip
    full_env = {
        **os.environ,
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=full_env,
            start_new_session=True,
        )  # fmt: skip
    server = LangGraphDev(proc, f"http://127.0.0.1:{port}", log)
    try:
        server.url = _wait(proc, log, port)
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m byway_langgraph.langgraph_dev",
        description="Make (once) the virtualenv of `langgraph dev` and print its executable.",
    )
    parser.add_argument("--venv", type=Path, help=f"where (default {default_venv()})")
    args = parser.parse_args(argv)
    print(ensure_langgraph_dev(args.venv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
