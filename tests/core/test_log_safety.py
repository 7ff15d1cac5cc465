"""Values read from the wire cannot forge a log line: Byway's loggers escape them."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from byway import AskAgentCommand, CancelTaskCommand, GatewayClient, MessageHeader, RedisSettings
from byway._log import escape_controls, get_logger
from byway.protocol import encode_command
from tests.agents.basic import echo
from tests.conftest import ROOT, running

FORGED = "2030-01-01 00:00:00,000 INFO byway.worker: task forged-7 COMPLETED"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@pytest.fixture
def byway_log() -> Iterator[io.StringIO]:
    """Everything Byway logs (DEBUG and up), formatted the way ``byway worker`` does."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger("byway")
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.mark.redis
async def test_a_newline_in_wire_values_forges_no_log_line(
    client: GatewayClient,
    settings: RedisSettings,
    redis: aioredis.Redis,
    byway_log: io.StringIO,
) -> None:
    stream = settings.keys.agent_stream("echo")
    ask = AskAgentCommand(
        header=MessageHeader(
            message_id="m-ask", session_id=f"s\n{FORGED}", trace_id="t", target_agent_type="echo"
        ),
        content="hi",
    )
    cancel = CancelTaskCommand(
        header=MessageHeader(message_id=f"m-c\r\n{FORGED}", session_id="s-c", trace_id="t"),
        target_message_id=f"gone\n{FORGED}",
        reason=f"because\n{FORGED}",
    )
    bogus = {"action_type": f"BOGUS\n{FORGED}", "header": {}, "body": {}}
    async with running(echo, settings):
        await redis.xadd(stream, {"data": json.dumps(bogus).encode()})
        await redis.xadd(stream, {"data": encode_command(cancel)})
        await redis.xadd(stream, {"data": encode_command(ask)})
        sent = await client.send_message("echo", "s-ok", "after them")
        await client.wait_for_final("s-ok", sent.message_id, timeout=15)
        for _ in range(100):  # the entries before it are handled (or dead-lettered) by now
            if (await redis.xinfo_groups(stream))[0]["pending"] == 0:
                break
            await asyncio.sleep(0.05)
    text = byway_log.getvalue()
    assert "task forged-7 COMPLETED" in text  # the values were logged...
    forged = [line for line in text.splitlines() if line.startswith("2030-01-01")]
    assert forged == []  # ...on the line of the record that carried them
    assert "\\n2030-01-01" in text


def test_every_control_character_and_line_separator_is_escaped() -> None:
    text = "a\nb\rc\td\x1b[31me\x00f\x7fg\x85h\x9bi\u2028j\u2029k\x0bl\x0cm"
    escaped = escape_controls(text)
    assert escaped == (
        "a\\nb\\rc\\td\\x1b[31me\\x00f\\x7fg\\x85h\\x9bi\\u2028j\\u2029k\\x0bl\\x0cm"
    )
    assert len(escaped.splitlines()) == 1
    assert escape_controls("plain é ü 日本") == "plain é ü 日本"


def _emit(logger: logging.Logger, *args: object, **kwargs: object) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error(*args, **kwargs)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return out.getvalue()


class _Id:
    def __str__(self) -> str:
        return f"id\n{FORGED}"


def test_arguments_of_every_kind_message_and_exception_are_escaped() -> None:
    log = get_logger("byway.test_log_safety")
    said = _emit(log, "session %s, %r, %d tasks, %.1f s, %s", f"a\n{FORGED}", "b\nc", 3, 1.5, _Id())
    assert said.count("\n") == 1 and "3 tasks, 1.5 s" in said and "id\\n2030" in said
    said = _emit(log, "session %(session)s", {"session": f"a\n{FORGED}"})
    assert said == f"session a\\n{FORGED}\n"
    said = _emit(log, f"message itself\n{FORGED}")
    assert said.count("\n") == 1
    try:
        try:
            raise KeyError(f"inner\n{FORGED}")
        except KeyError as inner:
            raise ValueError(f"outer\u2028{FORGED}") from inner
    except ValueError:
        said = _emit(log, "failed", exc_info=True)
    assert not [line for line in said.splitlines() if line.startswith("2030-01-01")], said
    assert "ValueError: outer\\u20282030" in said and "KeyError: 'inner\\n2030" in said
    assert "Traceback (most recent call last):" in said  # still a readable traceback


def test_passwords_in_log_arguments_are_masked() -> None:
    log = get_logger("byway.test_log_safety")
    said = _emit(log, "could not connect to %s: %s", "redis://u:pw-secret-1@h/0", "x")
    assert "pw-secret-1" not in said and "redis://u:***@h/0" in said


def test_the_filter_is_attached_once_and_leaves_other_loggers_alone() -> None:
    first = get_logger("byway.test_log_safety.once")
    assert get_logger("byway.test_log_safety.once") is first and len(first.filters) == 1
    assert logging.getLogger().filters == [] or all(
        type(f).__module__ != "byway._log" for f in logging.getLogger().filters
    )


def test_every_byway_module_takes_its_logger_from_get_logger() -> None:
    sources = [
        *ROOT.glob("core/src/byway/**/*.py"),
        *ROOT.glob("integrations/*/src/**/*.py"),
        *ROOT.glob("libs/*/src/**/*.py"),
    ]
    assert len(sources) > 30
    plain = re.compile(r"logging\.getLogger\((?!record\.name|\"opentelemetry)")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sources
        if path != Path(ROOT / "core/src/byway/_log.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if plain.search(line)
    ]
    assert offenders == []
