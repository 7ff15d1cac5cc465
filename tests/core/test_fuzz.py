"""Property-based fuzzing of both wire decoders: whatever the bytes, the only exception is
ProtocolError, and whatever decodes is a well-formed command or event."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byway.errors import ProtocolError
from byway.protocol import (
    AskAgentCommand,
    CancelTaskCommand,
    Event,
    ReloadPluginsCommand,
    ResumeCommand,
    decode_command,
    decode_event,
    encode_command,
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

HEADER = {"message_id": "m1", "session_id": "s1", "trace_id": "t1"}
VALID = [
    {"action_type": "ASK_AGENT", "header": HEADER, "body": {"content": "hi"}},
    {"action_type": "RESUME", "header": HEADER, "body": {"content": "yes", "reply_data": [1]}},
    {"action_type": "CANCEL_TASK", "header": HEADER, "body": {"target_message_id": "m0"}},
    {"action_type": "RELOAD_PLUGINS", "header": HEADER, "body": {"reload_id": "r1"}},
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _mutate(template: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(template))
    node = out
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node
    if isinstance(node, dict):
        node[path[-1]] = value
    return out


PATHS = [
    ["action_type"],
    ["header"],
    ["body"],
    ["header", "message_id"],
    ["header", "session_id"],
    ["header", "trace_id"],
    ["header", "metadata"],
    ["header", "parent_message_id"],
    ["body", "content"],
    ["body", "extra_payload"],
    ["body", "reply_data"],
    ["body", "target_message_id"],
    ["body", "cancel_mode"],
    ["body", "wait_for_reply"],
]


def _well_formed(command: object) -> None:
    assert isinstance(
        command, (AskAgentCommand, ResumeCommand, CancelTaskCommand, ReloadPluginsCommand)
    )
    for name in ("message_id", "session_id", "trace_id"):
        value = getattr(command.header, name)
        assert isinstance(value, str) and 0 < len(value) <= 256
    encode_command(command)  # what decoded can be written again (no lone surrogates)


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_decode_or_raise_protocol_error(data: bytes) -> None:
    for decode in (decode_command, decode_event):
        try:
            decode(data)
        except ProtocolError:
            pass


@FUZZ
@given(
    st.sampled_from(VALID), st.sampled_from(PATHS), json_values, st.booleans(), st.integers(0, 40)
)
def test_mutated_commands_decode_or_raise_protocol_error(
    template: dict[str, Any], path: list[str], value: Any, braces: bool, cut: int
) -> None:
    data = msgspec.json.encode(_mutate(template, path, value))
    for raw in (data, data[: len(data) - cut], data.replace(b"1", b"\xff", 1)):
        try:
            command = decode_command(raw, forbid_braces=braces)
        except ProtocolError:
            continue
        _well_formed(command)


@FUZZ
@given(
    st.integers(1, 3000),
    st.sampled_from([b"[", b'{"a":']),
    st.sampled_from([["header", "metadata"], ["body", "content"], ["body", "extra_payload"]]),
)
def test_deep_nesting_anywhere_is_a_protocol_error(
    depth: int, opener: bytes, path: list[str]
) -> None:
    closer = b"]" if opener == b"[" else b"}"
    marker = msgspec.json.encode(_mutate(VALID[0], path, "@@"))
    data = marker.replace(b'"@@"', opener * depth + b"1" + closer * depth)
    try:
        decode_command(data)
    except ProtocolError as exc:  # two levels above the field: refused past 62 inside
        assert depth > 62 or "nested" not in str(exc)
    else:
        assert depth <= 62


@FUZZ
@given(json_values, st.text(max_size=10))
def test_events_decode_or_raise_protocol_error(data: Any, event_type: str) -> None:
    body = {"session_id": "s", "event_type": event_type, "data": data}
    try:
        event = decode_event(msgspec.json.encode(body), "1-0")
    except ProtocolError:
        return
    assert isinstance(event, Event) and event.id == "1-0"


@pytest.mark.parametrize("size", [10, 1000])
def test_a_surrogate_pair_is_text_but_a_lone_one_is_refused(size: int) -> None:
    pair = json.dumps({**VALID[0], "body": {"content": "\U0001f600" * size}}).encode()
    assert decode_command(pair).content == "\U0001f600" * size  # type: ignore[union-attr]
    lone = pair.replace(b"\\ude00", b"", 1)
    with pytest.raises(ProtocolError):
        decode_command(lone)
