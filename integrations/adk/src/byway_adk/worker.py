"""AdkWorker: a Google ADK agent (or App) served as a Byway worker.

Each task runs one ADK invocation through a fresh ``Runner``, with ADK's ``user_id`` =
the message's user code and ADK's ``session_id`` = the Byway session (a call from another
agent gets a session of its own, ``<session>:<message id>``). Sessions live in Redis by
default (:class:`~byway_adk.RedisSessionService`), so any worker continues any session.

What the invocation yields becomes session events:

- partial text → ``answerDelta`` (the agent's name in ``metadata.author``);
- function calls and responses → tool events (``tool_calls`` / ``tool_responses``);
- ``state_delta``, ``transfer_to_agent``, ``escalate`` → ``stepComplete`` state events,
  ``artifact_delta`` → artifact events;
- the last final response → the final answer, with the token usage of every model call;
- an error event → FAILED, with ADK's ``error_code`` as the error type.

Long-running tools and tool confirmations (``adk_request_confirmation``) pause the
invocation: the worker frees its slot and asks the user, with each pending function
call's id, name and arguments in the question's ``metadata.function_calls``. The answer
goes back to the agent as the function response of that call (same id and name), on
whichever worker the answer reaches. :func:`byway_adk.agent_tool` calls use the same
path to ask another Byway agent instead of the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from google.adk.agents import BaseAgent
from google.adk.agents.run_config import RunConfig
from google.adk.events import Event
from google.adk.runners import Runner
from google.genai import types

from byway import (
    AgentContext,
    AgentState,
    AgentTaskResult,
    ArtifactEvent,
    AskUserEvent,
    ConfigurationError,
    GatewayWorker,
    ResumeCommand,
    StateChangeEvent,
    StreamChunkEvent,
    TaskError,
)
from byway._log import get_logger
from byway_adk.sessions import RedisSessionService
from byway_adk.tools import CALL_MARKER, EXECUTION_ID_KEY

try:  # ADK 2 moved it to a module of its own
    from google.adk.agents._streaming_mode import StreamingMode
except ImportError:  # pragma: no cover - google-adk 1.x
    from google.adk.agents.run_config import StreamingMode  # type: ignore[attr-defined,no-redef,unused-ignore]
try:  # ADK >= 1.18: an App bundles the root agent with plugins and configs
    from google.adk.apps import App
except ImportError:  # pragma: no cover - older google-adk
    App = None  # type: ignore[assignment,misc]

__all__ = ["AdkWorker"]

log = get_logger("byway.adk")

#: the function call ADK issues to ask for a tool confirmation
CONFIRMATION = "adk_request_confirmation"
#: the function call ADK issues to ask for credentials
CREDENTIAL = "adk_request_credential"
#: answers taken as "confirmed" when a confirmation is answered in words
_YES = frozenset({"y", "yes", "ok", "okay", "approve", "approved", "confirm", "confirmed", "true"})
#: how ADK's own confirmation hint starts (it tells a program what to send back)
_ADK_DEFAULT_HINT = "Please approve or reject the tool call"
#: arguments of a long-running call that are the question itself, when it has one
_QUESTION_ARGS = ("question", "prompt", "message")
#: how long a cancelled invocation may take to close its open calls in the session
_ABORT_GRACE_SECONDS = 2.0
#: key of the Byway message id in ``RunConfig.custom_metadata`` (and so on every event)
MESSAGE_ID_KEY = "byway_message_id"
#: the function response of a call whose worker died while the tool ran
INTERRUPTED = {
    "status": "INTERRUPTED",
    "error": "the worker running this call stopped before the tool answered; "
    "it may or may not have taken effect",
}
#: environment variable naming a database for ADK's DatabaseSessionService
SESSION_DB_ENV = "BYWAY_ADK_SESSION_DB_URL"


def _accepts(func: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(func).parameters


_RUN_TAKES_ABORT = _accepts(Runner.run_async, "abort_signal")
_RUNNER_AUTO_CREATES = _accepts(Runner.__init__, "auto_create_session")
_RUN_CONFIG_METADATA = "custom_metadata" in RunConfig.model_fields


@dataclasses.dataclass
class _Invocation:
    """What one ADK invocation produced, as far as the worker needs it."""

    invocation_id: str = ""
    final: str = ""
    pending: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    error: tuple[str, str] | None = None
    usage: dict[str, int] = dataclasses.field(default_factory=dict)
    streamed: set[str] = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class _Continue:
    """An invocation to go on with after a crash ("" and None: start one)."""

    invocation_id: str = ""
    message: types.Content | None = None


class AdkWorker(GatewayWorker):
    """Serve an ADK agent or ``App`` under ``agent_type`` (default: its name).

    ``session_service="auto"`` keeps sessions in the worker's Redis
    (:class:`RedisSessionService`), or in a database through ADK's
    ``DatabaseSessionService`` when ``session_db_url`` (or ``BYWAY_ADK_SESSION_DB_URL``)
    is set; pass any ``BaseSessionService`` to use that instead. ``run_config`` is the
    base ``RunConfig`` of every invocation (streaming defaults to SSE, so text arrives in
    pieces).
    """

    def __init__(
        self,
        agent_or_app: Any,
        agent_type: str | None = None,
        *,
        session_service: Any = "auto",
        session_db_url: str | None = None,
        artifact_service: Any = None,
        memory_service: Any = None,
        run_config: RunConfig | None = None,
        user_id_of: Callable[[AgentContext], str] | None = None,
        session_id_of: Callable[[AgentContext], str] | None = None,
        worker_id: str | None = None,
    ) -> None:
        super().__init__(worker_id)
        if App is not None and isinstance(agent_or_app, App):
            self.app: Any = agent_or_app
            self.agent: Any = agent_or_app.root_agent
            name = agent_or_app.name
        elif isinstance(agent_or_app, BaseAgent):
            self.app = None
            self.agent = agent_or_app
            name = agent_or_app.name
        else:
            raise ConfigurationError(
                "agent_or_app: expected an ADK agent (BaseAgent) or App, "
                f"got {type(agent_or_app).__name__}"
            )
        if session_service != "auto" and not hasattr(session_service, "append_event"):
            raise ConfigurationError(
                "session_service: expected 'auto' or an ADK BaseSessionService, "
                f"got {type(session_service).__name__}"
            )
        self.app_name = name
        self.agent_type = agent_type or name
        self.session_db_url = session_db_url or os.environ.get(SESSION_DB_ENV) or None
        self.artifact_service = artifact_service
        self.memory_service = memory_service
        self.run_config = run_config or RunConfig(streaming_mode=StreamingMode.SSE)
        self.user_id_of = user_id_of or _default_user
        self.session_id_of = session_id_of or _default_session
        self._session_service = session_service
        self._bound: Any = None
        #: the default session service's retention
        self.session_ttl_seconds = 7 * 86400

    def get_agent_types(self) -> list[str]:
        return [self.agent_type]

    def session_service_for(self, ctx: AgentContext) -> Any:
        """The session service every task of this worker uses (built on first use)."""
        if self._bound is None:
            service = self._session_service
            if service == "auto" and self.session_db_url:
                from google.adk.sessions import DatabaseSessionService

                service = DatabaseSessionService(db_url=self.session_db_url)
            elif service == "auto":
                service = RedisSessionService(
                    ctx.redis, namespace=ctx.keys.namespace, ttl_seconds=self.session_ttl_seconds
                )
            self._bound = service
        return self._bound

    def _runner(self, ctx: AgentContext) -> Runner:
        kwargs: dict[str, Any] = {
            "session_service": self.session_service_for(ctx),
            "artifact_service": self.artifact_service,
            "memory_service": self.memory_service,
        }
        if _RUNNER_AUTO_CREATES:
            kwargs["auto_create_session"] = True
        if self.app is not None:
            return Runner(app=self.app, **kwargs)
        return Runner(agent=self.agent, app_name=self.app_name, **kwargs)

    # -- one task -----------------------------------------------------------------------

    async def process_command(self, command: Any, context: AgentContext) -> Any:
        if "adk_user" not in context.state:  # a resume keeps the identity of the ask
            context.state["adk_user"] = self.user_id_of(context)
            context.state["adk_session"] = self.session_id_of(context)
        user_id = str(context.state["adk_user"])
        session_id = str(context.state["adk_session"])
        runner = self._runner(context)
        invocation_id = ""
        again = context.record.is_retry  # its worker died
        resuming = isinstance(command, ResumeCommand) and bool(context.state.get("adk_pending"))
        if resuming and again:
            # the answers may be in the session already (the run died after ADK stored
            # them): then it goes on from the session, else they are stored now, once
            resuming = not await self._answers_stored(runner, context, user_id, session_id)
        if resuming:
            message = self._answers(command, context)
            if message is None:  # more calls or questions to go
                return await self._wait(context)
        else:
            message = _user_content(command.content)
            if not _RUNNER_AUTO_CREATES:
                await self._ensure_session(runner, user_id, session_id)
            if again:
                earlier = await self._earlier_run(runner, context, user_id, session_id)
                if isinstance(earlier, AgentTaskResult):
                    return earlier
                if isinstance(earlier, list):  # it had paused: wait for those calls
                    context.state["adk_pending"] = earlier
                    context.state["adk_answers"] = {}
                    return await self._wait(context)
                invocation_id, message = earlier.invocation_id, earlier.message or message
        run = await self._invoke(runner, context, user_id, session_id, message, invocation_id)
        if run.error is not None:
            code, text = run.error
            raise TaskError(f"{code}: {text}", error_type=code, error_message=text)
        if run.pending:
            context.state["adk_pending"] = run.pending
            context.state["adk_answers"] = {}
            return await self._wait(context)
        metadata: dict[str, Any] = {
            "adk": {
                "app_name": self.app_name,
                "user_id": user_id,
                "session_id": session_id,
                "invocation_id": run.invocation_id,
            }
        }
        if run.usage:
            metadata["usage"] = run.usage
        return AgentTaskResult(status=AgentState.COMPLETED, content=run.final, metadata=metadata)

    async def _ensure_session(self, runner: Runner, user_id: str, session_id: str) -> None:
        service = runner.session_service
        found = await service.get_session(
            app_name=runner.app_name, user_id=user_id, session_id=session_id
        )
        if found is None:
            with contextlib.suppress(ValueError):  # created meanwhile by the same session
                await service.create_session(
                    app_name=runner.app_name, user_id=user_id, session_id=session_id
                )

    async def _events_of(
        self, runner: Runner, ctx: AgentContext, user_id: str, session_id: str
    ) -> tuple[Any, list[Event]]:
        """The session, and its events of this task's invocations (its message id)."""
        session = await runner.session_service.get_session(
            app_name=runner.app_name, user_id=user_id, session_id=session_id
        )
        return session, [
            e
            for e in (session.events if session else [])
            if (e.custom_metadata or {}).get(MESSAGE_ID_KEY) == ctx.message_id
        ]

    async def _answers_stored(
        self, runner: Runner, ctx: AgentContext, user_id: str, session_id: str
    ) -> bool:
        """Whether a resumed run that died had stored its function responses already.

        Appending them again would answer the same calls twice: ADK would then drop
        the calls of the re-run model turn from every later request (and say so).
        """
        waiting = {p["id"] for p in ctx.state["adk_pending"]}
        _, events = await self._events_of(runner, ctx, user_id, session_id)
        stored = {r.id for e in events if e.author == "user" for r in e.get_function_responses()}
        if not waiting & stored:
            return False
        log.info(
            "%s had stored the answers of its resumed run before its worker died",
            ctx.message_id,
        )
        for key in ("adk_pending", "adk_answers", "adk_calling"):
            ctx.state.pop(key, None)
        return True

    async def _earlier_run(
        self, runner: Runner, ctx: AgentContext, user_id: str, session_id: str
    ) -> AgentTaskResult | list[dict[str, Any]] | _Continue:
        """This message ran before on a worker that died. Its answer if the invocation
        had ended; the calls it paused at if it had paused; else the invocation to
        continue, with the message that started it (ADK then adds nothing to the
        session twice)."""
        session, mine = await self._events_of(runner, ctx, user_id, session_id)
        if not mine:
            return _Continue()
        answered = {r.id for e in mine if e.author == "user" for r in e.get_function_responses()}
        pending: list[dict[str, Any]] = []
        for event in mine:
            waiting = set(event.long_running_tool_ids or ()) - answered
            pending += [_pending(c) for c in event.get_function_calls() if c.id in waiting]
            _mark_agent_calls(pending, event.get_function_responses())
        if pending:
            log.info(
                "%s had paused at %d call(s) before its worker died", ctx.message_id, len(pending)
            )
            return pending
        last = mine[-1]
        single = not getattr(self.agent, "sub_agents", None)  # else: maybe one agent's end
        if single and last.author != "user" and last.is_final_response() and not last.error_code:
            text = _text(last)
            if text:
                log.info("%s had answered before its worker died", ctx.message_id)
                return AgentTaskResult(status=AgentState.COMPLETED, content=text)
        await self._close_open_calls(runner, ctx, session, mine)
        log.info("%s continues invocation %s", ctx.message_id, mine[0].invocation_id)
        started = next(
            (e.content for e in mine if e.author == "user" and _text(e) and e.content), None
        )
        return _Continue(mine[0].invocation_id or "", started)

    async def _close_open_calls(
        self, runner: Runner, ctx: AgentContext, session: Any, mine: list[Event]
    ) -> None:
        """Answer the calls the dead run left open (its worker died inside the tools),
        each with a response saying so.

        ADK does not run such a call again (outside a resumable App) but asks the model
        again; left open, the call would be dropped from every later model request (ADK
        says "Dropping function calls with no matching function response" each time).
        Told that the call was interrupted, the model can make it again.
        """
        answered = {r.id for e in mine for r in e.get_function_responses()}
        for event in mine:
            open_calls = [c for c in event.get_function_calls() if c.id and c.id not in answered]
            if event.author == "user" or not open_calls:
                continue
            log.info(
                "%s: %d call(s) open when its worker died answered as interrupted",
                ctx.message_id,
                len(open_calls),
            )
            answer = Event(
                invocation_id=event.invocation_id,
                author=event.author,
                branch=event.branch,
                custom_metadata=event.custom_metadata,
                content=types.Content(
                    role="user",
                    parts=[
                        types.Part(
                            function_response=types.FunctionResponse(
                                id=c.id, name=c.name, response=dict(INTERRUPTED)
                            )
                        )
                        for c in open_calls
                    ],
                ),
            )
            await runner.session_service.append_event(session, answer)

    def _config(self, ctx: AgentContext) -> RunConfig:
        if not _RUN_CONFIG_METADATA:
            return self.run_config
        mine = {MESSAGE_ID_KEY: ctx.message_id, EXECUTION_ID_KEY: ctx.execution_id}
        base = self.run_config.custom_metadata or {}
        return self.run_config.model_copy(update={"custom_metadata": {**base, **mine}})

    async def _invoke(
        self,
        runner: Runner,
        ctx: AgentContext,
        user_id: str,
        session_id: str,
        message: types.Content,
        invocation_id: str,
    ) -> _Invocation:
        """Run one invocation, streaming it to the session; a cancel stops it."""
        abort = asyncio.Event()
        kwargs: dict[str, Any] = {
            "user_id": user_id,
            "session_id": session_id,
            "new_message": message,
            "run_config": self._config(ctx),
        }
        if invocation_id:
            kwargs["invocation_id"] = invocation_id
        if _RUN_TAKES_ABORT:
            kwargs["abort_signal"] = abort
        out = _Invocation()
        # on a cancel, ADK closes the invocation's open calls in the session when it sees
        # the abort signal (so the next message finds a consistent conversation); then
        # the invocation is stopped, whatever it waits on
        await ctx.until_cancelled(
            self._consume(runner.run_async(**kwargs), ctx, out),
            on_cancel=abort.set,
            grace_seconds=_ABORT_GRACE_SECONDS,
        )
        return out

    async def _consume(
        self, events: AsyncIterator[Event], ctx: AgentContext, out: _Invocation
    ) -> None:
        # close the iterator itself, here: an instrumented runner (OpenInference) hands
        # out a proxy whose iterator is a generator of its own, which would otherwise be
        # finalized later in another context (and fail to end its span cleanly)
        async with contextlib.aclosing(aiter(events)) as stream:  # type: ignore[type-var]
            async for event in stream:
                if await self._on_event(ctx, event, out):
                    break  # paused at a long-running call: the rest waits for its answer

    async def _on_event(self, ctx: AgentContext, event: Event, out: _Invocation) -> bool:
        """Stream one ADK event; True when the invocation should pause here."""
        out.invocation_id = event.invocation_id or out.invocation_id
        author = {"author": event.author}
        if event.error_code:
            out.error = (str(event.error_code), str(event.error_message or ""))
            return True
        text = _text(event)
        if event.partial:
            if text:
                out.streamed.add(event.id)
                await ctx.emit_chunk(StreamChunkEvent(content=text, metadata=author))
            return False
        if text and event.id not in out.streamed:  # not streamed in pieces: all at once
            await ctx.emit_chunk(StreamChunkEvent(content=text, metadata=author))
        if text and event.is_final_response():
            out.final = text
        _add_usage(out.usage, event)
        await self._on_actions(ctx, event, author)
        calls = event.get_function_calls()
        if calls:
            await ctx.emit_chunk(
                StreamChunkEvent(
                    tool_calls=[
                        {"id": c.id, "name": c.name, "args": _jsonable(c.args)} for c in calls
                    ],
                    metadata=author,
                )
            )
            waiting = set(event.long_running_tool_ids or ())
            out.pending += [_pending(c) for c in calls if c.id in waiting]
        responses = event.get_function_responses()
        if responses:
            await ctx.emit_chunk(
                StreamChunkEvent(
                    tool_responses=[
                        {"id": r.id, "name": r.name, "response": _clip(_jsonable(r.response))}
                        for r in responses
                    ],
                    metadata=author,
                )
            )
            _mark_agent_calls(out.pending, responses)
            # the tools of the paused step have answered: stop before the model goes on
            return bool(out.pending)
        return False

    async def _on_actions(self, ctx: AgentContext, event: Event, author: dict[str, Any]) -> None:
        actions = event.actions
        if actions is None:
            return
        if actions.state_delta:
            await ctx.emit_state(
                StateChangeEvent(
                    state="state_delta",
                    metadata={**author, "delta": _jsonable(dict(actions.state_delta))},
                )
            )
        for filename, version in (actions.artifact_delta or {}).items():
            await ctx.emit_artifact(
                ArtifactEvent(
                    url=f"adk-artifact:{filename}?version={version}",
                    metadata={**author, "filename": filename, "version": version},
                )
            )
        if actions.transfer_to_agent:
            await ctx.emit_state(
                StateChangeEvent(
                    state="transfer", metadata={**author, "to": actions.transfer_to_agent}
                )
            )
        if actions.escalate:
            await ctx.emit_state(StateChangeEvent(state="escalate", metadata=author))

    # -- waiting: other agents first, then the user ----------------------------------------

    async def _wait(self, ctx: AgentContext) -> Any:
        answers = ctx.state.get("adk_answers") or {}
        open_calls = [p for p in ctx.state["adk_pending"] if p["id"] not in answers]
        for pending in open_calls:
            if pending["kind"] == "agent_call":
                ctx.state["adk_calling"] = pending["id"]
                call = pending["call"]
                return await ctx.call_agent(
                    str(call["agent_type"]), str(call["content"]), timeout=call.get("timeout")
                )
        questions = [{k: v for k, v in p.items() if k != "call"} for p in open_calls]
        return await ctx.ask_user(
            AskUserEvent(prompt=_prompt(questions), metadata={"function_calls": questions})
        )

    def _answers(self, command: ResumeCommand, ctx: AgentContext) -> types.Content | None:
        """Record a reply; the function responses once every pending call has one."""
        pending: list[dict[str, Any]] = ctx.state["adk_pending"]
        answers: dict[str, Any] = ctx.state.setdefault("adk_answers", {})
        calling = ctx.state.pop("adk_calling", "")
        if calling:  # the called agent answered, or its deadline passed
            answers[calling] = {
                "status": str(command.status),
                "content": command.content,
                "reply_data": command.reply_data,
            }
        else:
            value = (
                command.reply_data
                if command.reply_data not in (None, "")
                else _plain(command.content)
            )
            asked = [p for p in pending if p["id"] not in answers and p["kind"] != "agent_call"]
            keyed = (
                isinstance(value, dict) and bool(value) and set(value) <= {p["id"] for p in asked}
            )
            for p in asked:
                if keyed and p["id"] not in value:
                    continue  # answered one by one: this one is asked again
                answers[p["id"]] = _response(p, value[p["id"]] if keyed else value, command)
        if any(p["id"] not in answers for p in pending):
            return None
        del ctx.state["adk_pending"], ctx.state["adk_answers"]
        return types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(
                        id=p["id"], name=p["name"], response=answers[p["id"]]
                    )
                )
                for p in pending
            ],
        )


def _default_user(ctx: AgentContext) -> str:
    return ctx.user_code or "anonymous"


def _default_session(ctx: AgentContext) -> str:
    """The Byway session; a call from another agent is a conversation of its own."""
    return ctx.session_id if ctx.is_root else f"{ctx.session_id}:{ctx.message_id}"


def _user_content(content: Any) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=str(_plain(content)))])


def _text(event: Event) -> str:
    parts = event.content.parts if event.content and event.content.parts else []
    return "".join(p.text for p in parts if p.text and not p.thought)


def _pending(call: Any) -> dict[str, Any]:
    kind = {CONFIRMATION: "confirmation", CREDENTIAL: "credential"}.get(call.name, "long_running")
    entry: dict[str, Any] = {
        "id": call.id,
        "name": call.name,
        "kind": kind,
        "args": _clip(_jsonable(call.args or {})),
    }
    if kind == "confirmation":
        confirmation = (call.args or {}).get("toolConfirmation") or {}
        original = (call.args or {}).get("originalFunctionCall") or {}
        entry["hint"] = str(confirmation.get("hint") or "")
        entry["tool"] = str(original.get("name") or "")
        entry["tool_args"] = _clip(_jsonable(original.get("args") or {}))
    return entry


def _mark_agent_calls(pending: list[dict[str, Any]], responses: list[Any]) -> None:
    """Pending calls whose tool answered with an agent_tool marker call another agent."""
    by_id = {p["id"]: p for p in pending}
    for response in responses:
        call = (response.response or {}).get(CALL_MARKER)
        if response.id in by_id and isinstance(call, dict):
            by_id[response.id].update(kind="agent_call", call=call)


def _prompt(questions: list[dict[str, Any]]) -> str:
    lines = []
    for q in questions:
        if q["kind"] == "confirmation":
            hint = str(q.get("hint") or "")
            if not hint or hint.startswith(_ADK_DEFAULT_HINT):  # addressed to a program
                shown = json.dumps(q.get("tool_args") or {}, default=str)[:200]
                hint = f"Approve {q.get('tool')}({shown})? (yes/no)"
            lines.append(hint)
        else:
            given: dict[str, Any] = q["args"] if isinstance(q["args"], dict) else {}
            asked = next((given[k] for k in _QUESTION_ARGS if isinstance(given.get(k), str)), "")
            lines.append(
                asked
                or f"{q['name']}({json.dumps(q['args'], default=str)[:200]}) waits for an answer"
            )
    return "\n".join(lines)


def _response(pending: dict[str, Any], value: Any, command: ResumeCommand) -> dict[str, Any]:
    """The function response a user's answer becomes."""
    if pending["kind"] == "confirmation":
        if isinstance(value, dict) and "confirmed" in value:
            return {**value, "confirmed": _confirmed(value["confirmed"])}
        return {"confirmed": _confirmed(value)}
    response = dict(value) if isinstance(value, dict) else {"result": value}
    status = str(command.status or "").upper()
    if status and status != AgentState.COMPLETED:
        response.setdefault("status", status)  # e.g. TIMEOUT: the question's deadline passed
    return response


def _confirmed(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower().rstrip(".!") in _YES


def _plain(content: Any) -> Any:
    """A resume's content as text when it is a list of message objects."""
    if isinstance(content, list):
        return " ".join(
            str(m.get("content", m.get("text", ""))) if isinstance(m, dict) else str(m)
            for m in content
        )
    return content


def _add_usage(total: dict[str, int], event: Event) -> None:
    usage = event.usage_metadata
    if usage is None:
        return
    for ours, theirs in (
        ("input_tokens", usage.prompt_token_count),
        ("output_tokens", usage.candidates_token_count),
        ("total_tokens", usage.total_token_count),
    ):
        if theirs:
            total[ours] = total.get(ours, 0) + int(theirs)


def _clip(value: Any, limit: int = 2000) -> Any:
    """Keep tool payloads in events and execution state small."""
    text = json.dumps(value, default=str)
    return value if len(text) <= limit else text[:limit] + "…"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
