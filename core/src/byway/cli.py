"""The ``byway`` command line: worker, send, stream, status, history, acl, demo, bench,
embedded."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from redis.exceptions import RedisError

from byway._log import escape_controls
from byway._prompt import open_questions, parse_answer, parse_value, render_ask, resume_hint
from byway._redact import redact_text
from byway.errors import BywayError, ConfigurationError, ResumeRefusedError
from byway.health import DEFAULT_HEALTH_HOST
from byway.protocol import Event, EventType
from byway.settings import RedisSettings

__all__ = ["main", "render_event"]


def _settings(args: argparse.Namespace) -> RedisSettings:
    settings = RedisSettings.from_env()
    overrides: dict[str, Any] = {}
    if getattr(args, "redis_url", None):
        overrides["url"] = args.redis_url
    if getattr(args, "namespace", None):
        overrides["namespace"] = args.namespace
    if getattr(args, "key_schema", None):
        overrides["schema"] = args.key_schema
    return replace(settings, **overrides) if overrides else settings


def _add_redis_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("redis")
    g.add_argument(
        "--redis-url",
        metavar="URL",
        help="redis://, rediss:// or unix:// URL, or redis+cluster://NODE for a Redis Cluster "
        "(default: $BYWAY_REDIS_URL, else embedded; a URL with a password belongs in "
        "$BYWAY_REDIS_URL: a command line is visible to ps)",
    )
    g.add_argument("--namespace", help="key namespace (default: $BYWAY_NAMESPACE or byai_gateway)")
    g.add_argument(
        "--key-schema",
        choices=["v1", "v2"],
        help="key layout (default: v2 on a Redis Cluster, which needs it, else v1)",
    )


# -- rendering ---------------------------------------------------------------------------


def render_event(event: Event, out: Any = sys.stdout, *, as_json: bool = False) -> None:
    """Print one event the way ``send --follow`` and ``stream`` show it."""
    if as_json:
        out.write(json.dumps({"id": event.id, **_event_dict(event)}, ensure_ascii=False) + "\n")
        out.flush()
        return
    kind = event.kind
    who = event.source_agent_type or "?"
    if kind == "chunk":
        text = event.data.get("content") or ""
        if event.event_type == EventType.REASONING_LOG_DELTA:
            out.write(f"\x1b[2m{text}\x1b[0m" if out.isatty() else text)
        else:
            out.write(text)
        for name in ("tool_calls", "function_call", "tool_responses", "function_response"):
            if event.data.get(name):
                out.write(f"\n[{who}] {name}: {json.dumps(event.data[name], ensure_ascii=False)}\n")
    elif kind == "state":
        out.write(f"\n[{who}] {event.data.get('state')}\n")
    elif kind == "artifact":
        out.write(f"\n[{who}] artifact: {event.data.get('url')}\n")
    elif kind == "ask_user":
        out.write(render_ask(who, event.message_id, event.data))
    elif kind == "answer_refused":
        reason = escape_controls(str(event.data.get("reason", "")))
        out.write(f"\n[{who}] answer to {event.message_id} refused: {reason}\n")
    elif kind == "final":
        status = event.data.get("status")
        error = event.data.get("error")
        line = f"\n[{who}] {status}"
        if error:
            line += f": {error.get('type')}: {error.get('message')}"
        out.write(line + "\n")
    elif kind == "end":
        pass
    else:
        out.write(f"\n[{who}] {event.event_type}: {json.dumps(event.data, ensure_ascii=False)}\n")
    out.flush()


def _event_dict(event: Event) -> dict[str, Any]:
    import msgspec

    data: dict[str, Any] = msgspec.to_builtins(event)
    data.pop("id", None)
    return data


# -- commands ----------------------------------------------------------------------------


def _cmd_worker(args: argparse.Namespace) -> int:
    from byway.app import load_worker, serve
    from byway.plugins import discover_plugins
    from byway.runner import RunnerConfig

    worker = load_worker(args.target, worker_id=args.worker_id, agent_types=args.agent_type)
    config = RunnerConfig(
        max_concurrency=args.concurrency,
        fetch_count=args.fetch_count,
        consumer_group=args.consumer_group,
        lease_seconds=args.lease_seconds,
        drain_timeout=args.drain_timeout,
        max_deliveries=args.max_deliveries,
        multitask_strategy=args.multitask_strategy,
        plugin_hook_timeout_seconds=args.plugin_hook_timeout,
        history_limit=args.history_limit,
    )
    plugins = discover_plugins(args.plugin or None, None, args.plugin_dir)
    asyncio.run(
        serve(
            worker,
            settings=_settings(args),
            config=config,
            health_port=args.health_port,
            health_host=args.health_host,
            plugins=plugins,
        )
    )
    return 0


async def _reload(args: argparse.Namespace) -> int:
    from byway.client import GatewayClient

    async with GatewayClient(settings=_settings(args)) as client:
        acks = await client.reload_plugins(reason=args.reason, timeout=args.timeout)
        workers = len(await client.registry.list_workers())
    if args.json:
        import msgspec

        print(json.dumps([msgspec.to_builtins(a) for a in acks], indent=2))
    else:
        for ack in acks:
            change = f"{ack.version_before or '-'} -> {ack.version_after or '-'}"
            print(f"{ack.worker_id:36} {ack.status:6} {change} {ack.error}")
        print(f"{len(acks)} of {workers} worker(s) answered")
    return 0 if len(acks) == workers and all(a.status == "ok" for a in acks) else 1


async def _send(args: argparse.Namespace) -> int:
    from byway.client import GatewayClient

    session = args.session or f"cli-{uuid.uuid4().hex[:12]}"
    async with GatewayClient(settings=_settings(args)) as client:
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

    async with GatewayClient(settings=_settings(args)) as client:
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
    async with GatewayClient(settings=_settings(args)) as client:
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


async def _cancel(args: argparse.Namespace) -> int:
    from byway.client import GatewayClient

    async with GatewayClient(settings=_settings(args)) as client:
        if args.message_id:
            outcome = await client.cancel_task(
                args.message_id, args.session, reason=args.reason, cancel_mode=args.mode
            )
        else:
            outcome = await client.cancel_session(
                args.session, reason=args.reason, cancel_mode=args.mode
            )
    print(json.dumps({"cancelled": outcome.message_ids}))
    return 0


async def _dlq(args: argparse.Namespace) -> int:
    from byway.client import GatewayClient

    async with GatewayClient(settings=_settings(args)) as client:
        if args.action == "replay":
            if not args.entry_id:
                print("error: dlq replay needs an ENTRY_ID (see `byway dlq list`)", file=sys.stderr)
                return 2
            sent = await client.replay_dead_letter(args.entry_id)
            print(
                json.dumps(
                    {
                        "replayed": args.entry_id,
                        "session_id": sent.session_id,
                        "message_id": sent.message_id,
                    }
                )
            )
            return 0
        letters = await client.dead_letters(args.count)
    if args.json:
        print(json.dumps(letters, indent=2))
    else:
        for letter in letters:
            # what a writer put there reaches a terminal: no control characters
            line = f"{letter['id']}  {letter.get('stream', '')}  {letter.get('reason', '')}"
            print(escape_controls(line))
        print(f"{len(letters)} dead letter(s)")
    return 0


async def _status(args: argparse.Namespace) -> int:
    from byway.client import GatewayClient
    from byway.status import collect_status, print_status

    async with GatewayClient(settings=_settings(args)) as client:
        report = await collect_status(client, group=args.consumer_group)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_status(report, client.settings.describe())
    return 0


def _cmd_acl(args: argparse.Namespace) -> int:
    from byway import acl

    if args.user and not args.role:
        print("error: --user names one user: give its --role too", file=sys.stderr)
        return 2
    password = None
    if args.password_stdin:
        password = acl.password_hash(sys.stdin.readline().rstrip("\r\n"))
    keys = _settings(args).keys
    users = [
        acl.acl_user(
            role,
            keys,
            user=args.user,
            redis_version=args.redis_version,
            password_sha256=password,
        )
        for role in ([args.role] if args.role else acl.ROLES)
    ]
    print(acl.render(users, keys, fmt=args.format, redis_version=args.redis_version))
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    try:
        from byway_history_postgres import history_command
    except ImportError:
        print(
            "error: byway history reads the Postgres history plugin's tables: "
            'pip install "byway[history-postgres]"',
            file=sys.stderr,
        )
        return 2
    return history_command(args)


def _cmd_embedded(args: argparse.Namespace) -> int:
    from byway import embedded

    if args.action == "start":
        print(embedded.ensure_embedded_redis())
    elif args.action == "stop":
        print("stopped" if embedded.stop_embedded_redis() else "not running")
    else:
        sock = embedded.socket_path()
        running = embedded._ping(sock)
        print(f"{'running' if running else 'not running'}: unix://{sock}")
    return 0


# -- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="byway",
        description="Distributed scheduling engine for AI agents on Redis Streams.",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("BYWAY_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO (default), WARNING, ERROR",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "worker",
        help="run a worker",
        description=(
            "Serve an agent: TARGET is module:attr naming a GatewayWorker subclass or instance, "
            "or an @byway.agent function."
        ),
    )
    p.add_argument("target", metavar="TARGET", help="module:attr, e.g. myapp.agents:Echo")
    p.add_argument(
        "--agent-type",
        action="append",
        metavar="T",
        help="agent type to serve (function agents and adapters; repeatable)",
    )
    p.add_argument("--worker-id", help="stable worker id (default: host-pid-random)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("BYAI_WORKER_CONCURRENCY", 50)),
        help="max tasks at once (default 50, $BYAI_WORKER_CONCURRENCY)",
    )
    p.add_argument(
        "--fetch-count",
        type=int,
        default=int(os.environ.get("BYAI_WORKER_FETCH_COUNT", 10)),
        help="entries per read (default 10, $BYAI_WORKER_FETCH_COUNT)",
    )
    p.add_argument("--consumer-group", default="agent_engines")
    p.add_argument("--lease-seconds", type=float, default=15.0, help="heartbeat lease (15)")
    p.add_argument(
        "--health-port",
        type=int,
        help="serve /healthz and /readyz on this port (off by default)",
    )
    p.add_argument(
        "--health-host",
        metavar="ADDR",
        default=os.environ.get("BYWAY_HEALTH_HOST") or DEFAULT_HEALTH_HOST,
        help="address the health server listens on: 127.0.0.1 (default, $BYWAY_HEALTH_HOST), "
        "0.0.0.0 for every interface (probes from other hosts)",
    )
    p.add_argument(
        "--max-deliveries",
        type=int,
        default=5,
        help="deliveries before a task that never finishes is dead-lettered (5)",
    )
    p.add_argument(
        "--multitask-strategy",
        choices=["enqueue", "reject", "interrupt"],
        default="enqueue",
        help="what a new message does while its session runs a task (enqueue)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds to finish running tasks on SIGTERM (30)",
    )
    p.add_argument(
        "--plugin",
        action="append",
        metavar="MODULE:CLASS",
        help="run this plugin instead of the installed ones (repeatable)",
    )
    p.add_argument("--plugin-dir", metavar="DIR", help="also load the plugins in DIR/*.py")
    p.add_argument(
        "--plugin-hook-timeout",
        type=float,
        default=5.0,
        help="seconds a plugin hook may take before it is skipped (5)",
    )
    p.add_argument(
        "--history-limit",
        type=int,
        default=20,
        help="turns of session history handed to each root task, 0 for none (20)",
    )
    _add_redis_options(p)
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser(
        "reload",
        help="reload every live worker's plugins",
        description=(
            "Send a reload to every live worker; each re-reads its plugins' configuration, "
            "publishes its agent configs and acknowledges. Exit 1 unless all succeed."
        ),
    )
    p.add_argument("--reason", default="", help="recorded with the reload")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for acks (10)")
    p.add_argument("--json", action="store_true")
    _add_redis_options(p)
    p.set_defaults(func=lambda a: asyncio.run(_reload(a)))

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
    _add_redis_options(p)
    p.set_defaults(func=lambda a: asyncio.run(_send(a)))

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
    _add_redis_options(p)
    p.set_defaults(func=lambda a: asyncio.run(_stream(a)))

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
    _add_redis_options(p)
    p.set_defaults(func=lambda a: asyncio.run(_resume(a)))

    p = sub.add_parser(
        "cancel",
        help="cancel a task and everything it started",
        description=(
            "Cancel MESSAGE_ID (breadth-first through the tasks it started), or with no "
            "MESSAGE_ID every task of SESSION and the messages queued behind them."
        ),
    )
    p.add_argument("session", metavar="SESSION")
    p.add_argument("message_id", metavar="MESSAGE_ID", nargs="?")
    p.add_argument("--reason", default=None)
    p.add_argument("--mode", choices=["graceful", "force"], default="graceful")
    _add_redis_options(p)
    p.set_defaults(func=lambda a: asyncio.run(_cancel(a)))

    p = sub.add_parser(
        "dlq",
        help="dead letters: list them, replay one",
        description=(
            "Tasks no worker could decode or finish. `list` shows the newest; `replay ID` "
            "sends that task again as a new message of its session."
        ),
    )
    p.add_argument("action", choices=["list", "replay"])
    p.add_argument("entry_id", metavar="ENTRY_ID", nargs="?")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--json", action="store_true")
    _add_redis_options(p)
    p.set_defaults(func=lambda a: asyncio.run(_dlq(a)))

    p = sub.add_parser(
        "status",
        help="workers, agent types, queues",
        description="Live workers, and per agent type: queue length and pending.",
    )
    p.add_argument("--consumer-group", default="agent_engines")
    p.add_argument("--json", action="store_true")
    _add_redis_options(p)
    p.set_defaults(func=lambda a: asyncio.run(_status(a)))

    p = sub.add_parser(
        "acl",
        help="print least-privilege Redis ACL rules for workers, clients and readers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Print Redis ACL users (ACL SETUSER commands for redis-cli, ACL file lines, or "
            "JSON) for the namespace and key schema of the usual settings:\n\n"
            "  worker  everything a worker runs (streams, records, scripts, leases, LangGraph\n"
            "          checkpoints, ADK sessions, byway dlq) on the namespace's keys only;\n"
            "          no FLUSHALL, FLUSHDB, CONFIG, KEYS, DEBUG, ACL, SHUTDOWN, MONITOR...\n"
            "  client  send, stream, resume, cancel: XADD to control streams and reads of\n"
            "          session streams, execution records and worker leases; no scripts, no\n"
            "          write to a record or a session stream (GatewayClient, byway send and\n"
            "          byway cancel then work without scripts)\n"
            "  reader  byway status and dashboards: read-only commands (and SCAN)\n\n"
            "Redis 7 separates read (%R~) from write (%W~) key permissions; Redis 6.2\n"
            "cannot, so under --redis-version 6.2 a client may also write what it reads.\n"
            "The rules set no password unless --password-stdin gives one (stored as its\n"
            "SHA-256). See docs/operations.md, 'Redis ACLs'."
        ),
    )
    p.add_argument("--role", choices=["worker", "client", "reader"], help="one role (default: all)")
    p.add_argument("--user", metavar="NAME", help="the user's name (default: byway-ROLE)")
    p.add_argument(
        "--format",
        choices=["setuser", "aclfile", "json"],
        default="setuser",
        help="ACL SETUSER commands (default), lines for an ACL file, or JSON",
    )
    p.add_argument(
        "--redis-version",
        choices=["7.2", "7.0", "6.2"],
        default="7.2",
        help="7.2 (and later, default), 7.0 (no CLIENT SETINFO) or 6.2 (no %%R~/%%W~)",
    )
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the user's password from the first line of stdin (printed as #SHA256)",
    )
    _add_redis_options(p)
    p.set_defaults(func=_cmd_acl)

    p = sub.add_parser(
        "history",
        help="a session's history, or a user's sessions (Postgres history plugin)",
        description=(
            "SESSION's turns (newest first; --tree adds its call tree, every execution with "
            "its state transitions), or with --user U that user's sessions, most recent first."
        ),
    )
    p.add_argument("session", metavar="SESSION", nargs="?")
    p.add_argument("--user", metavar="U", help="list this user's sessions instead")
    p.add_argument("--limit", type=int, default=50, help="turns or sessions per page (50)")
    p.add_argument("--cursor", help="the next page (printed after a full page)")
    p.add_argument("--oldest-first", action="store_true", help="a session's turns oldest first")
    p.add_argument("--tree", action="store_true", help="also the session's call tree")
    p.add_argument("--dsn", help="PostgreSQL URL or 'auto' (default: $BYWAY_HISTORY_POSTGRES_DSN)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_history)

    p = sub.add_parser(
        "demo",
        help="run the demo on the embedded Redis",
        description=(
            "Start the embedded Redis and a worker process, send a task and stream its answer."
        ),
    )
    p.add_argument("--question", default="What does Byway do?")
    _add_redis_options(p)
    p.set_defaults(func=lambda a: _lazy("byway.demo", a))

    p = sub.add_parser("bench", help="measure throughput and latency beside the redis-py floor")
    from byway.bench import add_arguments as add_bench_arguments

    add_bench_arguments(p)
    _add_redis_options(p)
    p.set_defaults(func=lambda a: _lazy("byway.bench", a))

    p = sub.add_parser("embedded", help="the machine's embedded Redis: start, stop, status")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=_cmd_embedded)
    return parser


def _lazy(module: str, args: argparse.Namespace) -> int:
    import importlib

    result: int = importlib.import_module(module).main(args, _settings(args))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except BywayError as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except RedisError as exc:  # one line, password masked, rather than a traceback
        print(f"error: redis: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
