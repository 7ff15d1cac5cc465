"""The tracing tests need both trace plugins (and Phoenix's server for some); on an
install without them they are not collected."""

from __future__ import annotations

import os
from collections.abc import Iterator
from importlib.util import find_spec

import pytest


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


_NEEDED = ("byway_trace_langfuse", "byway_trace_phoenix", "phoenix.server")
collect_ignore_glob = [] if all(map(_installed, _NEEDED)) else ["test_*.py"]


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Phoenix server of its own (working dir, SQLite database, ports); its URL.
    ``BYWAY_TEST_PHOENIX_URL`` names a running one instead."""
    from tests.tracing.phoenix_server import serving

    if os.environ.get("BYWAY_TEST_PHOENIX_URL"):
        yield os.environ["BYWAY_TEST_PHOENIX_URL"]
        return
    with serving(tmp_path_factory.mktemp("phoenix")) as url:
        yield url
