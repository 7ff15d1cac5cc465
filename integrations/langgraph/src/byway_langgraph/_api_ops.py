"""Operations the LangGraph Server API asks a worker to do on a thread, beside runs.

The server has no graph; what needs one (``threads.update_state``: reducers, ``as_node``)
goes to a worker of the graph as a command whose ``metadata["langgraph_api"]["op"]``
names the operation. :meth:`LangGraphWorker.process_command` hands such commands here.

- ``{"op": "update_state", "values": ..., "as_node": "node" | None, "checkpoint":
  {"checkpoint_id": ..., "checkpoint_ns": ...} | None}``: ``graph.aupdate_state`` on the
  session's thread (from that checkpoint if given), then the thread's state is recorded;
  the answer's ``reply_data`` is ``{"checkpoint": {...}}``, the new checkpoint.

The thread is always the command's session (a LangGraph thread is a Byway session): an
operation cannot reach another thread's checkpoints. The server sends operations as
tasks no session waits behind (not root tasks), so that updating the state of a thread
whose run waits for an answer does not queue behind that run.
"""

from __future__ import annotations

from typing import Any

from byway import AgentState, AgentTaskResult, ConfigurationError
from byway_langgraph._thread_state import checkpoint_ref, record_thread_state

__all__ = ["OPS", "run_op"]

#: the operations :func:`run_op` knows
OPS = ("update_state",)


def _checked_checkpoint(value: Any) -> dict[str, str]:
    """The checkpoint fields an operation may name (ids as strings; no thread id: the
    thread is the session's)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigurationError(f"checkpoint: expected an object, got {type(value).__name__}")
    found: dict[str, str] = {}
    for key in ("checkpoint_id", "checkpoint_ns"):
        part = value.get(key)
        if part is None:
            continue
        if not isinstance(part, str) or len(part) > 256:
            raise ConfigurationError(f"checkpoint.{key}: expected a string id")
        if part:
            found[key] = part
    return found


async def _update_state(worker: Any, graph: Any, context: Any, op: dict[str, Any]) -> Any:
    as_node = op.get("as_node")
    if as_node is not None and not isinstance(as_node, str):
        raise ConfigurationError(f"as_node: expected a node name, got {type(as_node).__name__}")
    thread_id = context.session_id
    conf: dict[str, Any] = {"thread_id": thread_id, **_checked_checkpoint(op.get("checkpoint"))}
    config = {"configurable": conf}
    new_config = await graph.aupdate_state(config, op.get("values"), as_node=as_node or None)
    await record_thread_state(context.redis, context.keys, thread_id, graph, config)
    return AgentTaskResult(
        status=AgentState.COMPLETED,
        content="",
        reply_data={"checkpoint": checkpoint_ref(new_config)},
    )


async def run_op(worker: Any, graph: Any, command: Any, context: Any, op: dict[str, Any]) -> Any:
    """Do ``op`` on ``graph`` (bound to the worker's checkpointer); the task's result.
    An unknown operation or a bad argument fails the task, saying which."""
    name = op.get("op")
    if name == "update_state":
        return await _update_state(worker, graph, context, op)
    raise ConfigurationError(f"langgraph_api.op: expected one of {', '.join(OPS)}, got {name!r}")
