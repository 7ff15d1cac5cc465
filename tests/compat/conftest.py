"""The by-framework 0.2.1 venv the compat tests run its side in (Python 3.12, created once
outside the repository and reused; ``BYWAY_COMPAT_VENV`` names another place)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

BY_FRAMEWORK = "by-framework==0.2.1"

# -- the by-framework venv -----------------------------------------------------------------


def _python_version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None  # e.g. a pyenv shim whose version is not selected here
    major, minor = out.stdout.split()
    return int(major), int(minor)


def _find_python312() -> str | None:
    candidates: list[str] = []
    if found := shutil.which("python3.12"):
        candidates.append(found)
    try:
        root = subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        root = ""
    if root:
        candidates += sorted(
            glob.glob(os.path.join(root, "versions", "3.12*", "bin", "python")), reverse=True
        )
    return next((c for c in candidates if _python_version(c) == (3, 12)), None)


def _has_by_framework(python: Path) -> bool:
    if not python.exists():
        return False
    check = subprocess.run(
        [
            str(python),
            "-c",
            "import sys, importlib.metadata as m, by_framework; "
            "assert sys.version_info[:2] == (3, 12); print(m.version('by-framework'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return check.returncode == 0 and check.stdout.strip() == "0.2.1"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise venv creation across pytest-xdist workers (POSIX; no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def by_framework_python() -> Path:
    """The python of a 3.12 venv with by-framework 0.2.1 (created once, outside the repo)."""
    venv = Path(
        os.environ.get(
            "BYWAY_COMPAT_VENV",
            Path(tempfile.gettempdir()) / "byway-compat-venv-by-framework-0.2.1",
        )
    )
    python = venv / "bin" / "python"
    with _file_lock(venv.parent / f".{venv.name}.lock"):
        if _has_by_framework(python):
            return python
        if python.exists() and _python_version(str(python)) != (3, 12):
            pytest.skip(f"{venv} exists but is not a Python 3.12 venv (by-framework needs 3.12)")
        if not python.exists():
            base = _find_python312()
            if base is None:
                pytest.skip("by-framework needs Python 3.12: no python3.12 on PATH or in pyenv")
            made = subprocess.run(
                [base, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=120
            )
            if made.returncode != 0:
                pytest.skip(f"could not create a 3.12 venv at {venv}: {made.stderr.strip()[-500:]}")
        try:
            pip = subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "-q",
                    BY_FRAMEWORK,
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            pytest.skip(f"pip install {BY_FRAMEWORK} timed out (no network?)")
        if pip.returncode != 0 or not _has_by_framework(python):
            pytest.skip(
                f"pip install {BY_FRAMEWORK} failed (no network?): {pip.stderr.strip()[-500:]}"
            )
        return python
