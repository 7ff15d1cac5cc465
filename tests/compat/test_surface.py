"""Every public name and parameter by-framework 0.2.1 has, Byway has too — or
docs/by-framework.md says why not.

``surface.py`` describes each package's ``__all__`` (kinds, parameters, public methods,
attributes, enum members) in its own interpreter: by-framework's in the 3.12 venv the
compat tests share, Byway's here. What by-framework has and Byway lacks must be exactly
the entries of the migration page's "Not carried over" list, so the page can neither
hide a gap nor keep an entry that has since been closed.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.compat, pytest.mark.timeout(420)]

HERE = Path(__file__).parent
SURFACE = HERE / "surface.py"
DOC = HERE.parents[1] / "docs" / "by-framework.md"
SECTION = "## Not carried over"


def _surface(python: str | Path, package: str) -> dict[str, Any]:
    out = subprocess.run(
        [str(python), str(SURFACE), package],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE,  # never the repository root: the peer must not import the checkout
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def _accepts(theirs: dict[str, Any] | None, ours: dict[str, Any] | None) -> list[str]:
    """Parameter names of ``theirs`` that ``ours`` does not accept."""
    if not theirs or not ours:
        return []
    if ours["var_keyword"]:
        return []
    return [name for name in theirs["names"] if name not in ours["names"]]


def missing(theirs: dict[str, Any], ours: dict[str, Any]) -> set[str]:
    """Entries by-framework has and Byway lacks: ``Name``, ``Name.attr``, ``Name(param)``,
    ``Name.method(param)``."""
    gaps: set[str] = set()
    for name, item in theirs.items():
        mine = ours.get(name)
        if mine is None:
            gaps.add(name)
            continue
        if item["kind"] == "enum":
            have = set(mine.get("members", ()))
            gaps |= {f"{name}.{m}" for m in item["members"] if m not in have}
        elif item["kind"] == "function":
            gaps |= {f"{name}({p})" for p in _accepts(item["params"], mine.get("params"))}
        elif item["kind"] == "class":
            if mine["kind"] != "class":
                gaps.add(name)
                continue
            gaps |= {f"{name}({p})" for p in _accepts(item["init"], mine["init"])}
            have = set(mine["attributes"]) | set(mine["fields"]) | set(mine["methods"])
            for attr in item["fields"]:
                if attr not in have:
                    gaps.add(f"{name}.{attr}")
            for method, params in item["methods"].items():
                if method not in have:
                    gaps.add(f"{name}.{method}")
                elif isinstance(params, dict) and isinstance(mine["methods"].get(method), dict):
                    gaps |= {
                        f"{name}.{method}({p})" for p in _accepts(params, mine["methods"][method])
                    }
    # a subclass's gap that its base class has too is the base's (listed once)
    for name, item in theirs.items():
        for base in item.get("bases", ()):
            inherited = {
                g[len(base) :] for g in gaps if g[: len(base) + 1] in (base + ".", base + "(")
            }
            gaps -= {name + rest for rest in inherited}
    return gaps


def documented() -> set[str]:
    """The entries the migration page lists under "Not carried over": each bullet names
    its entries in backticks before the dash that starts its reason (``*`` matches any
    run of characters, e.g. ``AgentContext(*)`` every constructor parameter)."""
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text, f"{DOC.name} has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    entries: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("- "):
            continue
        head = line.split(" — ", 1)[0]
        entries |= set(re.findall(r"`([^`]+)`", head))
    return entries


def test_every_by_framework_name_is_in_byway_or_documented(by_framework_python: Path) -> None:
    theirs = _surface(by_framework_python, "by_framework")
    ours = _surface(sys.executable, "byway")
    assert len(theirs) > 50, "by-framework's __all__ was not read"
    gaps = missing(theirs, ours)
    listed = documented()
    undocumented = sorted(g for g in gaps if not any(fnmatch.fnmatchcase(g, p) for p in listed))
    stale = sorted(p for p in listed if not any(fnmatch.fnmatchcase(g, p) for g in gaps))
    assert not undocumented, (
        f"by-framework has these and Byway lacks them; add them or list them in {DOC.name}, "
        f"{SECTION!r}, with why:\n  " + "\n  ".join(undocumented)
    )
    assert not stale, (
        f"{DOC.name} lists these as missing but Byway has them now; remove them:\n  "
        + "\n  ".join(stale)
    )


def test_the_check_sees_a_gap() -> None:
    """The comparison itself: a missing name, parameter, method and enum member each
    show up, and ``**kwargs`` accepts any parameter."""
    params = {"names": ["a", "b"], "var_keyword": False, "var_positional": False}
    theirs = {
        "f": {"kind": "function", "params": params},
        "g": {"kind": "function", "params": params},
        "E": {"kind": "enum", "members": ["X", "Y"]},
        "C": {
            "kind": "class",
            "init": params,
            "fields": ["x"],
            "attributes": [],
            "methods": {"m": params, "n": "property"},
        },
        "Gone": {"kind": "value"},
        "Sub": {
            "kind": "class",
            "init": params,
            "fields": ["x"],
            "attributes": [],
            "methods": {},
            "bases": ["C"],
        },
    }
    ours = {
        "f": {"kind": "function", "params": {**params, "names": ["a"]}},
        "g": {"kind": "function", "params": {"names": [], "var_keyword": True}},
        "E": {"kind": "enum", "members": ["X"]},
        "C": {
            "kind": "class",
            "init": {**params, "names": ["a", "b"]},
            "fields": [],
            "attributes": ["n"],
            "methods": {"m": {**params, "names": ["b"]}},
        },
        "Sub": {"kind": "class", "init": params, "fields": [], "attributes": [], "methods": {}},
    }
    # Sub's missing x is C's, listed once
    assert missing(theirs, ours) == {"f(b)", "E.Y", "C.x", "C.m(a)", "Gone"}
