"""Plain pip resolves ``byway[...]`` for every combination of extras.

``make install`` installs from uv's lock, which hides a conflict pip would meet: the
lock holds one consistent set, while pip takes the newest release of each dependency
and backtracks from there. So this resolves the checkout's packages the way a user
installs them, ``pip install "byway[adk,langfuse]"``, with the pip that ``python -m
venv`` brings, in a throwaway virtualenv: each extra alone, every pair, all together.
Only the dependency ranges of the pyproject files decide (``--dry-run``, the
machine's pip configuration ignored). Needs the package index (PyPI): run by
``make test-deps``, not by ``make test``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import tomllib
import venv
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.deps, pytest.mark.timeout(900)]

#: the directories of the distributions an extra can name (the workspace members)
MEMBERS = (
    "core",
    "integrations/langgraph",
    "integrations/adk",
    "libs/history-postgres",
    "libs/trace-langfuse",
    "libs/trace-phoenix",
    "libs/server",
)


def _project(path: str) -> dict[str, Any]:
    with open(ROOT / path / "pyproject.toml", "rb") as f:
        return dict(tomllib.load(f)["project"])


def _extras() -> dict[str, list[str]]:
    """byway's extras, one name per distinct requirement list (``postgres`` is
    ``history-postgres`` again). Most name a member; ``otel`` names the OpenTelemetry SDK."""
    seen: dict[tuple[str, ...], str] = {}
    for name, requires in _project("core")["optional-dependencies"].items():
        seen.setdefault(tuple(sorted(requires)), name)
    return {name: list(requires) for requires, name in seen.items()}


EXTRAS = _extras()
COMBINATIONS = [
    *([e] for e in EXTRAS),
    *(list(pair) for pair in itertools.combinations(EXTRAS, 2)),
    ["adk", "langfuse", "phoenix"],  # pip once backtracked google-adk and failed here
    list(EXTRAS),
]
LOCAL = {_project(path)["name"]: ROOT / path for path in MEMBERS}


def _name(requirement: str) -> str:
    """The distribution a requirement names: ``opentelemetry-sdk>=1.27`` -> ``opentelemetry-sdk``."""
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def _locked(name: str) -> tuple[int, ...]:
    with open(ROOT / "uv.lock", "rb") as f:
        [version] = [p["version"] for p in tomllib.load(f)["package"] if p["name"] == name]
    return _version(version)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


@pytest.fixture(scope="session")
def pip(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """pip of a fresh virtualenv, with the build backend of the checkout's packages
    (so each resolution builds their metadata without fetching it again)."""
    where = tmp_path_factory.mktemp("pip-venv")
    venv.create(where, with_pip=True)
    python = str(where / "bin" / "python")
    command = [python, "-m", "pip"]
    _run([*command, "install", "--quiet", "hatchling>=1.25"])
    return command


def _env() -> dict[str, str]:
    """This environment without pip settings (a machine's own wheel folders and
    constraints must not decide), but with its certificates and timeout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    keep = ("PIP_CERT", "PIP_DEFAULT_TIMEOUT")
    env.update({k: os.environ[k] for k in keep if k in os.environ})
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=840)


def _requirements(extras: list[str]) -> list[str]:
    """``./core[extras]`` and the local directories of the members those extras name (the
    other packages they name come from the index)."""
    named = {_name(r) for e in extras for r in EXTRAS[e]} & set(LOCAL)
    unknown = {_name(r) for e in extras for r in EXTRAS[e] if _name(r).startswith("byway")}
    unknown -= set(LOCAL)
    assert not unknown, f"extras name byway packages outside the checkout: {sorted(unknown)}"
    return [f"{LOCAL['byway']}[{','.join(extras)}]", *(str(LOCAL[n]) for n in sorted(named))]


@pytest.mark.parametrize("extras", COMBINATIONS, ids=lambda e: ",".join(e))
def test_pip_resolves_the_extras(pip: list[str], extras: list[str], tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    done = _run(
        [
            *pip,
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-build-isolation",
            "--quiet",
            "--report",
            str(report),
            *_requirements(extras),
        ]
    )
    assert done.returncode == 0, (
        f"pip could not resolve byway[{','.join(extras)}]:\n{done.stderr[-3000:]}"
    )
    chosen = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    wanted = {_name(n) for e in extras for n in EXTRAS[e]} | {"byway"}
    assert wanted <= set(chosen), f"missing from the resolution: {sorted(wanted - set(chosen))}"
    if "byway-adk" in wanted:  # not backtracked to an old ADK to make room for the others
        assert _version(chosen["google-adk"]) >= _locked("google-adk"), chosen["google-adk"]


def test_every_member_is_an_extra() -> None:
    named = {_name(n) for e in EXTRAS for n in EXTRAS[e]} & set(LOCAL)
    assert named == set(LOCAL) - {"byway"}, "an extra or a member is missing from the check"
