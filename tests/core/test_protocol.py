from __future__ import annotations

import json

import pytest

from byway import (
    AskAgentCommand,
    CancelMode,
    CancelTaskCommand,
    MessageHeader,
    ProtocolError,
    ReloadPluginsCommand,
    ResumeCommand,
)
from byway.protocol import decode_command, decode_event, encode_command, encode_event

HEADER = MessageHeader(message_id="msg-1", session_id="s-1", trace_id="t-1", target_agent_type="a")

# An AskAgent exactly as the by-framework 0.2.1 Python client writes it.
BY_FRAMEWORK_ASK = {
    "action_type": "ASK_AGENT",
    "header": {
        "message_id": "msg-1a2b",
        "session_id": "sess",
        "trace_id": "trace",
        "source_agent_type": "",
        "target_agent_type": "echo",
        "parent_message_id": "",
        "task_group_id": "",
        "user_code": "u1",
        "user_name": "",
        "metadata": {},
    },
    "body": {"content": "hello", "wait_for_reply": False},
}


@pytest.mark.parametrize(
    "command",
    [
        AskAgentCommand(header=HEADER, content="hi", extra_payload={"x": 1}),
        AskAgentCommand(header=HEADER, content=[{"role": "user", "content": "hi"}]),
        ResumeCommand(header=HEADER, content="yes", status="COMPLETED", reply_data={"a": [1]}),
        CancelTaskCommand(header=HEADER, target_message_id="m", cancel_mode=CancelMode.FORCE),
        ReloadPluginsCommand(header=HEADER, reload_id="r1", reason="new config"),
    ],
)
def test_commands_round_trip(command: object) -> None:
    data = encode_command(command)  # type: ignore[arg-type]
    wire = json.loads(data)
    assert set(wire) == {"action_type", "header", "body"}
    assert decode_command(data) == command


def test_by_framework_ask_decodes_and_unknown_fields_are_tolerated() -> None:
    raw = json.loads(json.dumps(BY_FRAMEWORK_ASK))
    raw["header"]["future_field"] = 1
    raw["body"]["also_new"] = {"x": 1}
    command = decode_command(json.dumps(raw))
    assert isinstance(command, AskAgentCommand)
    assert command.content == "hello" and command.header.user_code == "u1"
    assert command.extra_payload == {}


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["header"].pop("trace_id"), "trace_id"),
        (lambda d: d["header"].update(message_id=7), "$.header.message_id"),
        (lambda d: d["header"].update(session_id=""), "$.header.session_id"),
        (lambda d: d["body"].update(content=""), "$.body.content"),
        (lambda d: d["body"].update(content=[]), "$.body.content"),
        (lambda d: d["body"].update(wait_for_reply="yes"), "$.body.wait_for_reply"),
        (lambda d: d.update(action_type="FLY"), "$.action_type"),
        (lambda d: d.pop("header"), "header"),
    ],
)
def test_bad_commands_name_the_field(mutate: object, field: str) -> None:
    raw = json.loads(json.dumps(BY_FRAMEWORK_ASK))
    mutate(raw)  # type: ignore[operator]
    with pytest.raises(ProtocolError) as err:
        decode_command(json.dumps(raw))
    assert field in str(err.value)


def test_not_json_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not JSON"):
        decode_command(b"{nope")


def test_cancel_mode_is_validated() -> None:
    raw = {
        "action_type": "CANCEL_TASK",
        "header": BY_FRAMEWORK_ASK["header"],
        "body": {"target_message_id": "m", "cancel_mode": "gently"},
    }
    with pytest.raises(ProtocolError, match="cancel_mode"):
        decode_command(json.dumps(raw))


def test_encoding_an_empty_ask_is_refused() -> None:
    with pytest.raises(ProtocolError, match="content"):
        encode_command(AskAgentCommand(header=HEADER, content="  "))


def test_event_round_trip_keeps_entry_id() -> None:
    data = encode_event(
        trace_id="t",
        session_id="s",
        event_type="answerDelta",
        source_agent_type="a",
        message_id="m",
        parent_message_id="",
        data={"kind": "chunk", "content": "x"},
    )
    wire = json.loads(data)
    assert set(wire) == {
        "trace_id",
        "session_id",
        "event_type",
        "source_agent_type",
        "message_id",
        "parent_message_id",
        "timestamp",
        "data",
        "metadata",
    }
    assert wire["timestamp"] > 1_600_000_000_000  # milliseconds
    event = decode_event(data, "1-0")
    assert event.id == "1-0" and event.kind == "chunk" and event.data["content"] == "x"
    with pytest.raises(ProtocolError, match="session_id"):
        decode_event(b'{"event_type": "x"}')


def test_command_dicts_round_trip_in_the_wire_shape_and_are_checked_like_entries() -> None:
    from byway import command_from_dict, command_to_dict

    header = MessageHeader(message_id="m1", session_id="s1", trace_id="t1")
    ask = AskAgentCommand(header=header, content="hi", extra_payload={"k": 1})
    data = command_to_dict(ask)
    assert data["action_type"] == "ASK_AGENT"
    assert data["body"] == {"content": "hi", "wait_for_reply": False, "extra_payload": {"k": 1}}
    assert command_from_dict(data) == ask
    bad = {**data, "header": {**data["header"], "session_id": ""}}
    with pytest.raises(ProtocolError, match=r"header\.session_id"):
        command_from_dict(bad)
    with pytest.raises(ProtocolError, match="expected an object"):
        command_from_dict(["not", "a", "dict"])  # type: ignore[arg-type]
