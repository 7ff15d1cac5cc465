"""A thread's state as the LangGraph Server API shows it, recorded when a run stops.

The worker has the graph, the server does not: so when a run served through the API
stops (its end, an interrupt, an error, a cancel), the worker writes the thread's
``StateSnapshot`` rendered as JSON (``values``, ``next``, ``tasks``, ``interrupts``,
``checkpoint``, ``metadata``, ``created_at``, ``parent_checkpoint``) with
:func:`byway_langgraph._api_records.put_thread_state`, and any replica answers
``GET /threads/{id}/state`` from it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["record_thread_state"]


async def record_thread_state(
    redis: Any, keys: Any, thread_id: str, graph: Any, config: Any
) -> None:
    """Write ``thread_id``'s latest state (``graph.aget_state(config)``) to its record."""
    # TODO(lgstate): render the snapshot and put_thread_state it
    return None
