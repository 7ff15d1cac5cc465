"""What the core does without its optional packages: it imports no plugin package, finds
``byway history`` through the ``byway.cli`` entry point and says what to install when
that package cannot be loaded, and ``byway.telemetry`` names the extra it needs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "core" / "src" / "byway"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}  # help lines unwrapped
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )


def test_no_core_module_imports_a_plugin_or_adapter_package() -> None:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            found += [f"{path.name}: {n}" for n in names if n.startswith("byway_")]
    assert found == []


def test_history_without_its_package_says_what_to_install() -> None:
    # the entry point is installed here; its package cannot be imported
    done = _python(
        "import sys; sys.modules['byway_history_postgres'] = None\n"
        "from byway.cli import main\n"
        "sys.exit(main(['history', 's', '--dsn', 'postgresql://db/x']))"
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: byway history reads the Postgres history plugin's tables: "
        'pip install "byway[history-postgres]"'
    )


def test_history_is_listed_without_its_package() -> None:
    done = _python(
        "import sys; sys.modules['byway_history_postgres'] = None\n"
        "from byway.cli import main\n"
        "main(['--help'])"
    )
    assert done.returncode == 0, done.stderr
    assert "a session's history, or a user's sessions (Postgres history plugin)" in done.stdout


def test_history_comes_from_the_byway_cli_entry_point() -> None:
    pytest.importorskip("byway_history_postgres")
    from byway.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["history", "s", "--tree", "--dsn", "auto"])
    assert (args.session, args.tree, args.dsn) == ("s", True, "auto")
    assert args.func.__module__ == "byway_history_postgres._cli"


def test_telemetry_without_the_sdk_names_the_extra() -> None:
    done = _python("import sys; sys.modules['opentelemetry.sdk'] = None\nimport byway.telemetry")
    assert done.returncode == 1
    assert "ImportError: byway.telemetry needs the OpenTelemetry SDK" in done.stderr
    assert 'pip install "byway[otel]"' in done.stderr


@pytest.mark.parametrize("name", ["demo", "status"])
def test_a_plugin_command_named_like_a_built_in_one_breaks_no_command(
    tmp_path: Path, name: str
) -> None:
    """A package whose ``byway.cli`` entry point takes a built-in name (or whose callable
    adds one) is skipped: every command still parses and the built-in one runs."""
    (tmp_path / "clash").mkdir()
    (tmp_path / "clash" / "__init__.py").write_text(
        "def add(sub):\n"
        f"    sub.add_parser({name!r}, help='the clash').set_defaults(func=lambda a: 7)\n"
    )
    info = tmp_path / "clash-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: clash\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[byway.cli]\n{name} = clash:add\nother = clash:add\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "byway.cli", name, "--help"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "the clash" not in done.stdout
