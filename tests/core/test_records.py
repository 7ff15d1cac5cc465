"""The one execution record: born in Python the way the scripts expect it, read back typed
whatever the scripts (and cjson) made of it."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from msgspec import UNSET

from byway import ExecutionRecord, GatewayClient, RedisSettings
from byway.protocol import MessageHeader
from byway.records import TimelineEntry, decode_record, new_record, started_record
from tests.agents.answers import asker
from tests.agents.basic import echo
from tests.conftest import running, until_status

#: what ``new_record`` wrote before the record had one type (a dict built by hand): the
#: scripts read a fresh record as this, key for key (a present 0 is truthy in Lua)
LEGACY_FRESH = {
    "execution_id": "exec-1",
    "message_id": "msg-1",
    "session_id": "s-1",
    "trace_id": "t-1",
    "status": "QUEUED",
    "target_agent_type": "echo",
    "source_agent_type": "client",
    "parent_message_id": "msg-0",
    "task_group_id": "g-1",
    "user_code": "u-1",
    "depth": 2,
    "worker_id": "",
    "cancel_requested": False,
    "cancel_reason": "",
    "created_at": 1_700_000_000_000,
    "started_at": 0,
    "finished_at": 0,
    "updated_at": 1_700_000_000_000,
    "attempts": 0,
    "timeline": [{"status": "QUEUED", "timestamp": 1_700_000_000_000, "worker_id": ""}],
}

#: what the scripts add to a record after it is born; none is in a fresh one
SCRIPT_FIELDS = {
    "stream_name",
    "redis_message_id",
    "result",
    "step_attempts",
    "solo_runs",
    "config_version",
    "trace",
    "waited",
}


def fresh(**overrides: Any) -> bytes:
    fields: dict[str, Any] = {
        "execution_id": "exec-1",
        "message_id": "msg-1",
        "session_id": "s-1",
        "trace_id": "t-1",
        "status": "QUEUED",
        "target_agent_type": "echo",
        "source_agent_type": "client",
        "parent_message_id": "msg-0",
        "task_group_id": "g-1",
        "user_code": "u-1",
        "depth": 2,
        "now": 1_700_000_000_000,
    }
    return new_record(**{**fields, **overrides})


def test_a_fresh_record_is_what_new_record_always_wrote() -> None:
    raw = fresh()
    assert msgspec.json.decode(raw) == LEGACY_FRESH
    assert raw == msgspec.json.encode(LEGACY_FRESH)  # byte for byte, key order too
    assert not SCRIPT_FIELDS & set(msgspec.json.decode(raw))


def test_a_fresh_record_reads_typed_and_encodes_without_what_the_scripts_add() -> None:
    record = decode_record(fresh())
    assert record.states == ["QUEUED"] and record.depth == 2
    assert record.step_attempts is UNSET and record.solo_runs is UNSET
    assert record.config_version is UNSET and record.trace is UNSET and record.waited is UNSET
    assert record.stream_name == "" and record.redis_message_id == "" and record.result is None
    assert not record.is_retry and record.user_answers == 0 and not record.resumed_by_user
    assert record.carried_trace is None
    again = msgspec.json.decode(msgspec.json.encode(record))
    assert not {"step_attempts", "solo_runs", "config_version", "trace", "waited"} & set(again)


def test_the_timeline_helpers_read_who_resumed_the_run() -> None:
    record = ExecutionRecord(
        execution_id="e",
        timeline=[
            TimelineEntry(status="QUEUED", timestamp=1),
            TimelineEntry(status="RUNNING", timestamp=2),
            TimelineEntry(status="WAITING_USER", timestamp=3),
            TimelineEntry(status="RESUMED", timestamp=4, detail={"by": "user"}),
            TimelineEntry(status="WAITING_AGENT", timestamp=5),
            TimelineEntry(status="RESUMED", timestamp=6, detail={"by": "msg-child"}),
        ],
        step_attempts=2,
        trace={"traceparent": "00-ab-cd-01"},
    )
    assert record.user_answers == 1 and not record.resumed_by_user and record.is_retry
    assert record.carried_trace == {"traceparent": "00-ab-cd-01"}
    assert isinstance(record.timeline, list)
    record.timeline.append(TimelineEntry(status="RESUMED", timestamp=7, detail={"by": "user"}))
    assert record.user_answers == 2 and record.resumed_by_user
    assert ExecutionRecord(execution_id="e", timeline={}).steps == []


def test_a_run_keeps_the_identity_of_its_record_and_takes_what_it_lacks_from_the_header() -> None:
    header = MessageHeader(
        message_id="msg-1",
        session_id="s-1",
        trace_id="t-1",
        source_agent_type="planner",
        parent_message_id="msg-child",
        task_group_id="grp-1",
    )
    # a group's reply resuming a root that dispatched it: the record's "" counts
    root = started_record(
        fresh(source_agent_type="", parent_message_id="", task_group_id=""), header
    )
    assert (root.parent_message_id, root.task_group_id, root.source_agent_type) == ("", "", "")
    # a record by-framework created has no task_group_id (nor user_code, depth)
    theirs = {
        "execution_id": "exec-1",
        "message_id": "msg-1",
        "session_id": "s-1",
        "trace_id": "t-1",
        "parent_message_id": "",
        "source_agent_type": "client",
        "target_agent_type": "echo",
        "stream_name": "byai_gateway:ctrl:agent_type:echo",
        "status": "RUNNING",
        "created_at": 1,
        "updated_at": 1,
        "started_at": 1,
        "finished_at": 0,
        "timeline": [{"status": "QUEUED", "timestamp": 1}],
        "step_attempts": 1,
    }
    record = started_record(msgspec.json.encode(theirs), header)
    assert (record.parent_message_id, record.source_agent_type) == ("", "client")
    assert record.task_group_id == "grp-1" and record.depth == 0 and record.user_code == ""
    assert decode_record(msgspec.json.encode(theirs)).task_group_id == ""  # as stored


def test_a_record_that_fails_to_decode_names_the_field() -> None:
    with pytest.raises(msgspec.ValidationError, match="step_attempts"):
        decode_record(b'{"execution_id": "e", "step_attempts": "two"}')


@pytest.mark.redis
async def test_what_cjson_writes_back_decodes(redis: aioredis.Redis) -> None:
    # cjson turns an empty list into {} and keeps every key a script added
    echo_script = "local r = cjson.decode(ARGV[1]); r['step_attempts'] = 0; return cjson.encode(r)"
    emptied = json.dumps({**LEGACY_FRESH, "timeline": []})
    raw = await redis.eval(echo_script, 0, emptied)  # type: ignore[misc]
    assert b'"timeline":{}' in raw
    record = decode_record(raw)
    assert record.timeline == {} and record.steps == [] and record.states == []
    assert record.step_attempts == 0  # present: Lua reads it as 0, not as "absent"
    assert msgspec.json.decode(msgspec.json.encode(record))["step_attempts"] == 0


@pytest.mark.redis
async def test_every_field_the_scripts_write_is_typed_on_the_record(
    client: GatewayClient, settings: RedisSettings, redis: aioredis.Redis
) -> None:
    fields = set(ExecutionRecord.__struct_fields__)

    async def raw_of(session: str, execution_id: str) -> dict[str, Any]:
        raw = await redis.hget(settings.keys.session_registry(session), f"exec:{execution_id}")
        assert raw is not None
        return dict(msgspec.json.decode(raw))

    async with running(echo, settings):
        done = (await client.send_message("echo", "r-1", "hi")).raise_for_status()
        record = await until_status(client, "r-1", done.message_id, "COMPLETED")
        written = await raw_of("r-1", done.execution_id)
    assert set(written) <= fields, set(written) - fields
    assert record.step_attempts == 1 and not record.is_retry and record.waited is UNSET
    assert record.redis_message_id and record.stream_name and record.result
    assert record.result["status"] == "COMPLETED"

    async with running(asker, settings):
        sent = (await client.send_message("asker", "r-2", "deploy?")).raise_for_status()
        waiting = await until_status(client, "r-2", sent.message_id, "WAITING_USER")
        assert set(await raw_of("r-2", sent.execution_id)) <= fields
        assert waiting.waited is True and waiting.user_answers == 0
        await client.resume("r-2", sent.message_id, "yes")
        ended = await until_status(client, "r-2", sent.message_id, "COMPLETED")
        assert set(await raw_of("r-2", sent.execution_id)) <= fields
    assert ended.user_answers == 1 and ended.waited is UNSET
    assert ended.states[-2:] == ["RESUMED", "COMPLETED"]  # resumed_by_user: at its start
    assert ended.step_attempts == 1
