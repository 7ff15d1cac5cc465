"""Operations the LangGraph Server API asks a worker to do on a thread, beside runs.

The server has no graph; what needs one (``threads.update_state``: reducers, ``as_node``)
goes to a worker of the graph as a command whose ``metadata["langgraph_api"]["op"]``
names the operation. :meth:`LangGraphWorker.process_command` hands such commands here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_op"]


async def run_op(worker: Any, graph: Any, command: Any, context: Any, op: dict[str, Any]) -> Any:
    """Do ``op`` on ``graph`` (bound to the worker's checkpointer); the task's result."""
    # TODO(lgstate): update_state
    raise NotImplementedError(f"langgraph_api op {op.get('op')!r}")
