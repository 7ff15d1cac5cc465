"""Workers with the plugin: history and the execution log land in PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from byway_history_postgres import (
    PostgresHistoryPlugin,
    PostgresHistorySettings,
    PostgresHistoryStore,
)

from byway import GatewayClient, RedisSettings
from byway.cli import main
from tests.agents.plugged import callee, caller, prompted
from tests.conftest import running, spawn_worker, stop_process, wait_online
from tests.history_postgres.conftest import eventually

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[PostgresHistoryStore]:
    async with PostgresHistoryStore.connect(pg_dsn) as s:
        yield s


async def test_two_worker_processes_writing_one_session_keep_its_order(
    monkeypatch: pytest.MonkeyPatch,
    pg_dsn: str,
    store: PostgresHistoryStore,
    client: GatewayClient,
    settings: RedisSettings,
) -> None:
    monkeypatch.setenv("BYWAY_HISTORY_POSTGRES_DSN", pg_dsn)  # found through its entry point
    monkeypatch.setenv("BYWAY_DISABLED_PLUGINS", "langfuse,phoenix")  # history alone here
    procs = [
        spawn_worker("tests.agents.plugged:remember", settings, worker_id=w) for w in ("pa", "pb")
    ]
    try:
        await wait_online(client, "remember", count=2)
        # all at once, alternating workers: the session runs them one after the other
        sent = [
            await client.send_message(
                "remember",
                "two-proc",
                f"m{i}",
                user_code="ana",
                target_worker_id=("pa", "pb")[i % 2],
            )
            for i in range(8)
        ]
        finals = [await client.wait_for_final("two-proc", s.message_id, timeout=30) for s in sent]
    finally:
        for proc in procs:
            stop_process(proc)
    expected = [t for i in range(8) for t in (("user", f"m{i}"), ("assistant", f"heard m{i}"))]
    turns = await store.list("two-proc", limit=100)
    assert [(t.role, t.content) for t in turns] == expected
    # each task was handed the turns before it, read back from PostgreSQL by the other process
    assert [[tuple(t) for t in f.data["reply_data"]["history"]] for f in finals] == [
        expected[: 2 * i] for i in range(8)
    ]
    for i, message in enumerate(sent):
        (root,) = [
            n for n in await store.call_tree("two-proc") if n.message_id == message.message_id
        ]
        assert [t.status for t in root.transitions] == ["QUEUED", "RUNNING", "COMPLETED"]
        assert {t.worker_id for t in root.transitions} == {"", ("pa", "pb")[i % 2]}
    sessions = await store.sessions("ana")
    assert [(s.session_id, s.agent_types, s.messages) for s in sessions.sessions] == [
        ("two-proc", ["remember"], 16)
    ]


async def test_a_call_tree_and_a_question_are_logged_in_order(
    pg_dsn: str,
    store: PostgresHistoryStore,
    client: GatewayClient,
    settings: RedisSettings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def plugin() -> PostgresHistoryPlugin:
        return PostgresHistoryPlugin(PostgresHistorySettings(dsn=pg_dsn))

    async with (
        running(caller, settings, plugins=[plugin()]),
        running(callee, settings, plugins=[plugin()]),
    ):
        call = await client.send_message("caller", "tree", "go", user_code="bo")
        final = await client.wait_for_final("tree", call.message_id, timeout=30)
    assert final.data["content"] == "callee said hi"
    async with running(prompted, settings, plugins=[plugin()]):
        asked = await client.send_message("prompted", "tree", "ask", user_code="bo")
        await _until_waiting(client, "tree", asked.message_id)
        await client.resume("tree", asked.message_id, "yes")
        await client.wait_for_final("tree", asked.message_id, timeout=30)

    async def logged() -> bool:
        return len(await store.session_log("tree")) >= 13

    await eventually(logged)
    roots = await store.call_tree("tree")
    assert [(r.agent_type, r.status) for r in roots] == [
        ("caller", "COMPLETED"),
        ("prompted", "COMPLETED"),
    ]
    first, second = roots
    assert [t.status for t in first.transitions] == [
        "QUEUED", "RUNNING", "WAITING_AGENT", "RESUMED", "COMPLETED",
    ]  # fmt: skip
    assert first.transitions[3].detail == {"by": first.children[0].message_id}
    (child,) = first.children
    assert (child.agent_type, child.parent_message_id) == ("callee", first.message_id)
    assert [t.status for t in child.transitions] == ["QUEUED", "RUNNING", "COMPLETED"]
    assert [t.status for t in second.transitions] == [
        "QUEUED", "RUNNING", "WAITING_USER", "RESUMED", "COMPLETED",
    ]  # fmt: skip
    log = await store.session_log("tree")
    assert log == sorted(log, key=lambda t: (t.timestamp, t.execution_id, t.seq))
    assert await store.timeline(first.execution_id) == first.transitions
    turns = [(t.role, t.content, t.status) for t in await store.list("tree")]
    assert turns == [
        ("user", "go", ""),
        ("assistant", "callee said hi", "COMPLETED"),
        ("user", "ask", ""),
        ("assistant", "go on?", "WAITING_USER"),
        ("user", "yes", ""),
        ("assistant", "<no config>", "COMPLETED"),
    ]

    code = await asyncio.to_thread(
        main, ["history", "tree", "--oldest-first", "--tree", "--dsn", pg_dsn]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "6 turn(s) of tree, oldest first" in text
    assert text.index("user       caller  go\n") < text.index(
        "assistant  prompted  go on?  [WAITING_USER]\n"
    )
    assert f"caller {first.message_id} COMPLETED" in text
    assert f"    callee {child.message_id} COMPLETED" in text  # under its caller
    assert await asyncio.to_thread(main, ["history", "--user", "bo", "--dsn", pg_dsn]) == 0
    text = capsys.readouterr().out
    assert "  tree  callee,caller,prompted  6 message(s)\n" in text
    assert "1 session(s) of bo" in text


async def _until_waiting(client: GatewayClient, session: str, message_id: str) -> None:
    for _ in range(400):
        record = await client.registry.get_execution_by_message(session, message_id)
        if record is not None and record.status == "WAITING_USER":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never asked")
