"""The tracing tests need both trace plugins (and Phoenix's server for one of them); on an
install without them they are not collected."""

from importlib.util import find_spec


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


_NEEDED = ("byway_trace_langfuse", "byway_trace_phoenix", "phoenix.server")
collect_ignore_glob = [] if all(map(_installed, _NEEDED)) else ["test_*.py"]
