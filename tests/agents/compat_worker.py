"""A worker written as by-framework's README writes one (a GatewayWorker class started by
``module.Class``), using the workspace and the application's own logger."""

from __future__ import annotations

import logging
import os
import stat
from typing import Any

from byway import AgentContext, Command, GatewayWorker

log = logging.getLogger(__name__)


class CompatAgent(GatewayWorker):
    """``compat``: answers with its text; ``workspace`` writes in its workspace, and
    ``plant:<dir>`` plants a symlink to ``<dir>`` in it."""

    def get_agent_types(self) -> list[str]:
        return ["compat"]

    async def process_command(self, command: Command, context: AgentContext) -> dict[str, Any]:
        text = str(getattr(command, "content", ""))
        log.info("handling %s", text, extra={"unserialisable": object(), "step": 1})
        reply: dict[str, Any] = {"pid": os.getpid(), "worker_id": context.worker_id}
        if text.startswith(("workspace", "plant:")):
            task = context.workspace
            (task / "scratch.txt").write_text(text)
            reply["task_workspace"] = str(task)
            reply["session_workspace"] = str(context.session_workspace)
            reply["mode"] = stat.S_IMODE(task.stat().st_mode)
            reply["session_mode"] = stat.S_IMODE(context.session_workspace.stat().st_mode)
        if text.startswith("plant:"):
            (context.workspace / "escape").symlink_to(text.split(":", 1)[1])
        return {"content": text, "reply_data": reply}
