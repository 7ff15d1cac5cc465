"""What GatewayClient sends when it may not run Lua scripts (the ACL client role).

The scripted client writes execution records and cancels trees itself; without scripts
it writes only control-stream entries and leaves the rest to the worker that reads them:
a plain ask (START creates its record), and a CANCEL_TASK on the task's agent-type
stream (its worker runs the cancel tree). See docs/operations.md, "Redis ACLs".
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from byway.errors import ConfigurationError
from byway.protocol import CancelMode, CancelTaskCommand, MessageHeader, new_id
from byway.records import ExecutionRecord

__all__ = ["cancel_requests", "scripts_setting"]

_TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


def scripts_setting(value: bool | None) -> bool | None:
    """True: scripts only; False: never; None: scripts until Redis refuses one.
    ``None`` reads ``BYWAY_CLIENT_SCRIPTS`` (1, 0 or auto; unset: auto)."""
    if value is not None:
        return bool(value)
    raw = os.environ.get("BYWAY_CLIENT_SCRIPTS", "").strip().lower()
    if raw in ("", "auto"):
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"BYWAY_CLIENT_SCRIPTS: expected 1, 0 or auto, got {raw!r}")


def cancel_requests(
    records: list[ExecutionRecord], reason: str, mode: CancelMode
) -> list[tuple[CancelTaskCommand, dict[str, Any]]]:
    """For each execution that has not ended: the CANCEL_TASK for its agent type's stream,
    and its item of the CancelOutcome (the shape flow.cancel_tree reports)."""
    out: list[tuple[CancelTaskCommand, dict[str, Any]]] = []
    for record in records:
        if record.status.upper() in _TERMINAL:
            continue
        command = CancelTaskCommand(
            header=MessageHeader(
                message_id=new_id("msg-cancel"),
                session_id=record.session_id,
                trace_id=record.trace_id or uuid.uuid4().hex,
                target_agent_type=record.target_agent_type,
                parent_message_id=record.message_id,
            ),
            target_message_id=record.message_id,
            target_execution_id=record.execution_id,
            reason=reason,
            requested_by="client",
            cancel_mode=mode,
        )
        item = {
            "message_id": record.message_id,
            "execution_id": record.execution_id,
            "previous": record.status,
            "ended": False,
            "worker_id": record.worker_id,
            "target_agent_type": record.target_agent_type,
            "source_agent_type": record.source_agent_type,
            "parent_message_id": record.parent_message_id,
            "task_group_id": record.task_group_id,
            "trace_id": record.trace_id,
        }
        out.append((command, item))
    return out
