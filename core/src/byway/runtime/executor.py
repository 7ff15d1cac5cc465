"""Running one task: its span, the plugins' hooks around it, the handler, its result
(then the ender writes its end); and stopping a running task when it is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.exceptions import RedisError, ResponseError

from byway import tracing
from byway._log import bind_task, get_logger, unbind_task
from byway.context import AgentContext
from byway.errors import TaskCancelledError, TaskError
from byway.protocol import (
    AgentState,
    AgentTaskResult,
    AskAgentCommand,
    CancelMode,
    CancelTaskCommand,
    ResumeCommand,
    utf8_safe,
)
from byway.runtime.ender import Ender
from byway.runtime.history import is_root_ask
from byway.runtime.plugin_host import PluginHost
from byway.runtime.services import WorkerServices
from byway.runtime.slots import Running
from byway.runtime.util import cut
from byway.worker import normalize_result
from byway.workspace import Workspaces

__all__ = ["Executor"]

log = get_logger("byway.worker")


class Executor:
    """Runs tasks in their slots and stops them when asked."""

    def __init__(self, services: WorkerServices, ender: Ender, plugin_host: PluginHost) -> None:
        self.services = services
        self.ender = ender
        self.plugin_host = plugin_host
        self.worker = services.worker
        self.plugins = services.plugins
        #: where ``context.workspace`` lives (``serve(workspace=...)`` replaces it)
        self.workspaces = Workspaces()

    def launch(self, running: Running, *, suspect: bool = False) -> None:
        self.services.slots.add(running, suspect=suspect)
        running.task = asyncio.create_task(self.run(running), name=f"byway-task-{running.entry_id}")

    async def run(self, running: Running) -> None:
        ctx = running.context
        ctx.workspaces = self.workspaces
        # every line logged while it runs (its hooks, its handler, what they start) names it
        token = bind_task(
            session_id=ctx.session_id,
            message_id=ctx.message_id,
            trace_id=ctx.trace_id,
            execution_id=ctx.execution_id,
            agent_type=running.agent_type,
            worker_id=self.worker.worker_id,
        )
        try:
            await self._run_in_span(running)
        finally:
            unbind_task(token)

    async def _run_in_span(self, running: Running) -> None:
        ctx = running.context
        command = ctx.command
        resumed = isinstance(command, ResumeCommand)
        # a resume continues the run that suspended, whoever sent it (a callee, a group,
        # a deadline, the user)
        carried = ctx.record.carried_trace if resumed else None
        with tracing.task_span(
            f"byway.{'resume' if resumed else 'task'} {running.agent_type}",
            carried if carried is not None else command.header.metadata,
            {
                "byway.agent_type": running.agent_type,
                "byway.session_id": ctx.session_id,
                "byway.message_id": ctx.message_id,
                "byway.execution_id": ctx.execution_id,
                "byway.trace_id": ctx.trace_id,
                "byway.worker_id": self.worker.worker_id,
            },
            session_id=ctx.session_id,
            user_id=ctx.user_code,
            content=getattr(command, "content", None),
        ) as span:
            await self._run_traced(running, span)

    async def _before(self, ctx: AgentContext) -> None:
        """What a task gets before its handler: its agent config, its session's history
        (stores other than Redis), and the plugins' start hooks."""
        command = ctx.command
        version = ctx.record.config_version or ""
        host = self.plugin_host
        configs = host.agent_configs
        if version and version != host.config_version:
            try:
                configs = await host.configs_of(version)
            except Exception as exc:
                log.warning(
                    "agent configs %s unavailable (%s); using the current ones", version, exc
                )
        ctx.agent_config = configs.get(ctx.current_agent_id)
        ctx.agent_configs = configs
        history = self.services.history
        if (
            history.reads_before_run
            and is_root_ask(command)
            and isinstance(command, AskAgentCommand)
        ):
            await history.read(ctx, command)
        if self.plugins.has("on_task_start"):
            await self.plugins.fire("on_task_start", ctx)
        if (
            isinstance(command, ResumeCommand)
            and command.header.parent_message_id
            and self.plugins.has("on_call_agent_complete")
        ):
            await self.plugins.fire("on_call_agent_complete", ctx, command)

    async def _run_traced(self, running: Running, span: Any) -> None:
        ctx = running.context
        error: dict[str, str] | None = None
        result: AgentTaskResult | None = None
        try:
            await self._before(ctx)
            raw = await self.worker.process_command(ctx.command, ctx)
            if ctx.cancel_event.is_set():
                # cancel promises CANCELLED: a handler that ignored it and returned (or
                # asked something) within the grace has its answer discarded
                log.info("task %s returned after its cancel; its answer is discarded",
                         ctx.message_id)  # fmt: skip
                result = AgentTaskResult(status=AgentState.CANCELLED)
                error = {"type": "Cancelled", "message": ctx.cancel_reason or "task cancelled"}
            elif ctx.suspension is None:
                result = utf8_safe(normalize_result(raw))
        except (asyncio.CancelledError, TaskCancelledError) as exc:
            if not ctx.cancel_event.is_set() and isinstance(exc, asyncio.CancelledError):
                raise  # the runner itself is shutting down: leave the entry pending
            result = AgentTaskResult(status=AgentState.CANCELLED)
            error = {"type": "Cancelled", "message": ctx.cancel_reason or "task cancelled"}
        except Exception as exc:
            log.warning(
                "task %s (%s) failed: %s: %s",
                ctx.message_id,
                running.agent_type,
                type(exc).__name__,
                exc,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            error = {"type": type(exc).__name__, "message": str(exc)}
            if isinstance(exc, TaskError):  # an adapter's own error code (ADK's error_code)
                error = {
                    "type": exc.error_type or error["type"],
                    "message": exc.error_message or error["message"],
                }
            result = AgentTaskResult(
                status=AgentState.FAILED, content=f"{error['type']}: {error['message']}"
            )
        running.handler_done = True
        try:
            try:
                if result is None:
                    await self.ender.suspend(running)
                else:
                    written = await self.ender.finish(running, result, error)
                    if written == AgentState.CANCELLED != str(result.status).upper():
                        # its cancel was requested before its end was written: it ended so
                        result = AgentTaskResult(status=AgentState.CANCELLED)
                        error = {"type": "Cancelled", "message": ctx.cancel_reason or "cancelled"}
            except (RedisError, asyncio.CancelledError):
                raise  # its entry stays pending: recovered once Redis answers
            except Exception as exc:  # what it returned cannot be written: it fails, saying why
                log.exception("task %s could not end as it returned", ctx.message_id)
                error = {"type": type(exc).__name__, "message": cut(str(exc), 500)}
                result = AgentTaskResult(
                    status=AgentState.FAILED, content=f"{error['type']}: {error['message']}"
                )
                await self.ender.finish(running, result, error)
        finally:
            self.services.slots.remove(running)
        if result is not None:
            tracing.record_outcome(span, str(result.status).upper(), result.content, error)
            await self._after(ctx, result, error)  # its slot is free already
        elif ctx.suspension is not None:
            tracing.record_outcome(span, str(ctx.suspension.status))
        # after the end hooks (which may still read it); kept while the task waits
        await self.workspaces.finish(ctx.session_id, ctx.message_id, ended=result is not None)

    async def _after(
        self, ctx: AgentContext, result: AgentTaskResult, error: dict[str, str] | None
    ) -> None:
        """Once the end is written: the plugins' end hooks."""
        status = str(result.status).upper()
        if status == AgentState.CANCELLED:
            if self.plugins.has("on_task_cancel"):
                reason = (error or {}).get("message", "") or ctx.cancel_reason
                await self.plugins.fire("on_task_cancel", ctx, reason)
        elif error is not None or status == AgentState.FAILED:
            if self.plugins.has("on_task_error"):
                await self.plugins.fire(
                    "on_task_error",
                    ctx,
                    error or {"type": "Failed", "message": str(result.content)},
                )
        elif self.plugins.has("on_task_complete"):
            await self.plugins.fire("on_task_complete", ctx, result)

    async def cancel(self, command: CancelTaskCommand, *, tree: bool = False) -> None:
        """A cancel from this worker's own stream stops a local task. One read from an
        agent-type stream (``tree``: a client without scripts, a by-framework client) asks
        for what ``GatewayClient.cancel_task`` does: cancel the task's tree, whose running
        tasks then get a cancel on their workers' own streams."""
        if tree:
            try:
                await self.services.flow.cancel_tree(
                    command.header.session_id,
                    command.target_message_id,
                    reason=command.reason or "cancelled",
                    mode=command.cancel_mode,
                    requested_by=command.requested_by or "client",
                )
            except ResponseError as exc:  # a wrong-type key: retrying cannot help
                log.warning("cancel of %r failed: %s", command.target_message_id, exc)
            return
        # a cancel reaches only a task of the session its header names
        running = self.services.slots.running.get(
            (command.header.session_id, command.target_message_id)
        )
        if running is None or running.task is None:
            log.debug("cancel for %s: not running here", command.target_message_id)
            return
        ctx = running.context
        ctx.cancel_reason = command.reason or "cancelled"
        ctx.cancel_event.set()
        with contextlib.suppress(Exception):
            await self.worker.on_cancel_task(command)
        task = running.task
        if running.handler_done:
            return  # it is already ending; its end sees cancel_requested
        if command.cancel_mode == CancelMode.FORCE:
            task.cancel()
            return
        grace = self.services.config.cancel_grace_seconds

        async def force_after_grace() -> None:
            await asyncio.sleep(grace)
            if not task.done() and not running.handler_done:
                log.info("task %s ignored cancel for %.1fs: cancelling", ctx.message_id, grace)
                task.cancel()

        self.services.keep(asyncio.create_task(force_after_grace()))
