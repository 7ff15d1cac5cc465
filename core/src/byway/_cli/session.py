"""Talking to agents: ``byway send`` (and answering questions while it follows),
``byway stream`` and ``byway resume``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

from byway._cli.common import Commands, add_redis_options, settings_of
from byway._cli.render import render_event
from byway._log import escape_controls
from byway._prompt import open_questions, parse_answer, parse_value, resume_hint
from byway.errors import ConfigurationError, ResumeRefusedError
from byway.protocol import Event, EventType

__all__ = ["EXIT_WAITING", "add_resume", "add_send", "add_stream"]


def add_send(sub: Commands) -> None:
    p = sub.add_parser(
        "send",
        help="send a message to an agent",
        description=(
            "Send TEXT to AGENT_TYPE; with --follow, stream the answer until the task ends "
            "(exit 0 when it completed, 1 when it failed or was cancelled) and answer its "
            "questions: at a prompt on a terminal, else one line per question from stdin "
            "(exit 3 when stdin ends while a question waits). An answer that is a JSON "
            'object or array is sent as such; "quoted" JSON text is sent as its text.'
        ),
    )
    p.add_argument("agent_type", metavar="AGENT_TYPE")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("--session", help="session id (default: a new one)")
    p.add_argument("--follow", "-f", action="store_true", help="stream events until the end")
    p.add_argument("--user", help="user code")
    p.add_argument("--worker", help="send to this worker id directly")
    p.add_argument(
        "--no-require-online", action="store_true", help="queue even when no worker is online"
    )
    p.add_argument("--json", action="store_true", help="one JSON event per line")
    add_redis_options(p)
    p.set_defaults(func=lambda a: asyncio.run(_send(a)))


def add_stream(sub: Commands) -> None:
    p = sub.add_parser(
        "stream",
        help="print a session's events",
        description="Print SESSION's events from --after on, as they arrive.",
    )
    p.add_argument("session", metavar="SESSION")
    p.add_argument("--after", default="0", help="entry id to start after ('0' = all, '$' = new)")
    p.add_argument("--until-end", action="store_true", help="stop at the end of a root task")
    p.add_argument("--idle-timeout", type=float, help="stop after this many idle seconds")
    p.add_argument("--json", action="store_true", help="one JSON event per line")
    add_redis_options(p)
    p.set_defaults(func=lambda a: asyncio.run(_stream(a)))


def add_resume(sub: Commands) -> None:
    p = sub.add_parser(
        "resume",
        help="answer a question a task asked (ask_user)",
        description=(
            "Answer the question MESSAGE_ID asked in SESSION: TEXT, or --json, --answer-file "
            "or --interrupt ID=VALUE. Exit 2 when no task waits for it (unknown message, "
            "wrong session, finished, answered already)."
        ),
    )
    p.add_argument("session", metavar="SESSION")
    p.add_argument("message_id", metavar="MESSAGE_ID", help="the message id the question carries")
    p.add_argument("text", metavar="TEXT", nargs="?", help="the answer, as text")
    p.add_argument(
        "--json",
        dest="json_answer",
        metavar="JSON",
        help='the answer as JSON, e.g. \'{"decisions": [{"type": "approve"}]}\'',
    )
    p.add_argument(
        "--answer-file", metavar="PATH", help="read the answer as JSON from PATH ('-': stdin)"
    )
    p.add_argument(
        "--interrupt",
        action="append",
        metavar="ID=VALUE",
        help="answer the open question (interrupt or call) ID with VALUE, JSON if it parses, "
        "else text; repeatable, the others stay open",
    )
    add_redis_options(p)
    p.set_defaults(func=lambda a: asyncio.run(_resume(a)))


async def _send(args: argparse.Namespace) -> int:
    from byway.client import GatewayClient

    session = args.session or f"cli-{uuid.uuid4().hex[:12]}"
    async with GatewayClient(settings=settings_of(args)) as client:
        start = await client.last_event_id(session)
        resp = await client.send_message(
            args.agent_type,
            session,
            args.text,
            user_code=args.user or "",
            target_worker_id=args.worker,
            require_online_worker=not args.no_require_online,
        )
        if not resp.success:
            print(f"error: {resp.error}", file=sys.stderr)
            return 2
        if resp.disposition in ("queued", "interrupt"):
            print(await _queued_notice(client, resp), file=sys.stderr)
        if not args.follow:
            sent = {
                "session_id": session,
                "message_id": resp.message_id,
                "execution_id": resp.execution_id,
            }
            if resp.disposition in ("queued", "interrupt"):
                sent |= {"disposition": resp.disposition, "queued_behind": resp.queued_behind}
            print(json.dumps(sent))
            return 0
        if not args.json:
            print(f"session {session} · message {resp.message_id}", file=sys.stderr)
        return await _follow(client, args, session, resp.message_id, start)


async def _queued_notice(client: Any, resp: Any) -> str:
    """What ``send`` says of a message that waits behind the session's task."""
    session, holder = resp.session_id, resp.queued_behind
    if not holder:
        return f"queued: session {session} has other messages queued; this one runs after them"
    if resp.disposition == "interrupt":
        return f"queued first: it interrupts {holder}, the task session {session} runs"
    record = await client.registry.get_execution_by_message(session, holder)
    status = record.status if record else "?"
    if status != "WAITING_USER":
        return f"queued behind {holder} ({status}) in session {session}: it runs when that ends"
    asked = next(
        (
            str((e.detail or {}).get("question", ""))
            for e in reversed(record.timeline if isinstance(record.timeline, list) else [])
            if e.status == "WAITING_USER"
        ),
        "",
    )
    return (
        f"queued behind {holder}, which waits for an answer"
        + (f" ({escape_controls(asked)})" if asked else "")
        + "; this message runs after it ends. Answer it with:\n"
        + resume_hint(session, holder, [])
    )


#: ``send --follow``'s exit code when stdin ended while a question waits
EXIT_WAITING = 3


async def _follow(
    client: Any, args: argparse.Namespace, session: str, message_id: str, start: str
) -> int:
    """Stream the task's events; answer its questions from stdin (a prompt on a
    terminal, else one line per question), or exit 3 with how to answer once stdin ends."""
    status = "COMPLETED"
    answerer = _Answerer(client, session, as_json=args.json)
    asked: Event | None = None
    async for event in client.stream(session, after=start, until_message_id=message_id):
        render_event(event, as_json=args.json)
        if event.event_type == EventType.FINAL_ANSWER and event.message_id == message_id:
            status = str(event.data.get("status", status))
        if event.kind == "ask_user":
            asked = event
        elif not (  # a worker refused an answer and the question is still open: ask again
            event.kind == "answer_refused"
            and event.data.get("waiting") is True
            and asked is not None
            and asked.message_id == event.message_id
        ):
            continue
        if asked is not None and not await answerer.answer(asked):
            return EXIT_WAITING
    return 0 if status == "COMPLETED" else 1


class _Answerer:
    """Reads answers for ``send --follow``: a prompt per question on a terminal, lines
    from a pipe or file otherwise (with the ``byway resume`` hint on stderr)."""

    def __init__(self, client: Any, session: str, *, as_json: bool) -> None:
        self.client = client
        self.session = session
        self.interactive = sys.stdin.isatty() and not as_json

    async def answer(self, event: Event) -> bool:
        """Send an answer to ``event``'s questions; False when stdin ended first."""
        questions = open_questions(event.data)
        hint = resume_hint(self.session, event.message_id, questions)
        if not self.interactive:
            print(
                f"a question waits for an answer ({event.message_id}); reading it from stdin "
                f"(one line per question), or answer from another shell:\n{hint}",
                file=sys.stderr,
            )
        while True:
            answer = await self._read(questions)
            if answer is None:
                print(f"stdin ended while the task waits for an answer; answer with:\n{hint}",
                      file=sys.stderr)  # fmt: skip
                return False
            try:
                await self.client.resume(self.session, event.message_id, answer)
            except ResumeRefusedError as exc:
                print(f"error: {exc}", file=sys.stderr)
            return True

    async def _read(self, questions: list[Any]) -> Any:
        if len(questions) == 1:
            line = await self._line("your answer> ")
            return None if line is None else parse_answer(line)
        while True:
            answers: dict[str, Any] = {}
            for n, q in enumerate(questions, 1):
                line = await self._line(
                    f"answer [{n}] {escape_controls(q.id)} (empty: leave open)> "
                )
                if line is None:
                    return None
                if line.strip():
                    answers[q.id or str(n)] = parse_answer(line)
            if answers:
                return answers
            print("answer at least one question", file=sys.stderr)

    async def _line(self, prompt: str) -> str | None:
        if self.interactive:
            try:
                return await asyncio.to_thread(input, prompt)
            except EOFError:
                return None
        line = await asyncio.to_thread(sys.stdin.readline)
        return line.rstrip("\r\n") if line else None


async def _stream(args: argparse.Namespace) -> int:
    from byway.client import GatewayClient

    async with GatewayClient(settings=settings_of(args)) as client:
        async for event in client.stream(
            args.session,
            after=args.after,
            stop_at_end=args.until_end,
            idle_timeout=args.idle_timeout,
        ):
            render_event(event, as_json=args.json)
    return 0


async def _resume(args: argparse.Namespace) -> int:
    from byway.client import GatewayClient

    answer = _answer_of(args)
    async with GatewayClient(settings=settings_of(args)) as client:
        resp = await client.resume(args.session, args.message_id, answer)
        print(json.dumps({"message_id": resp.message_id, "status": resp.status}))
    return 0


def _answer_of(args: argparse.Namespace) -> Any:
    """The answer ``byway resume`` sends: TEXT, --json, --answer-file or --interrupt."""
    given = [
        name
        for name, value in (
            ("TEXT", args.text),
            ("--json", args.json_answer),
            ("--answer-file", args.answer_file),
            ("--interrupt", args.interrupt),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise ConfigurationError(
            "answer: give exactly one of TEXT, --json, --answer-file or --interrupt, got "
            + (", ".join(given) or "none")
        )
    if args.json_answer is not None:
        return _json_answer("--json", args.json_answer)
    if args.answer_file is not None:
        path = args.answer_file
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
        except OSError as exc:
            raise ConfigurationError(f"--answer-file: cannot read {path!r} ({exc})") from None
        return _json_answer("--answer-file", text)
    if args.interrupt is not None:
        return _interrupt_answers(args.interrupt)
    return args.text


def _json_answer(option: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{option}: expected JSON, got {text[:80]!r} ({exc})") from None


def _interrupt_answers(pairs: list[str]) -> dict[str, Any]:
    """``--interrupt ID=VALUE`` (repeatable) as ``{ID: VALUE}``, VALUE JSON if it parses."""
    answers: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--interrupt: expected ID=VALUE, got {pair!r}")
        if key in answers:
            raise ConfigurationError(f"--interrupt: {key!r} is answered twice")
        answers[key] = parse_value(value)
    return answers
