"""by-framework's registry read methods, in its shapes, beside Byway's typed ones."""

from __future__ import annotations

import pytest

from byway import GatewayClient, RedisSettings, check_agent_type_online, check_worker_online
from tests.agents.basic import echo
from tests.conftest import running, until_status

pytestmark = pytest.mark.redis


async def test_by_framework_reads_see_the_worker_and_its_executions(
    client: GatewayClient, settings: RedisSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYWAY_NAMESPACE", settings.namespace)  # the function forms' keys
    registry = client.registry
    assert await registry.has_online_agent_type("echo") == (False, [])
    async with running(echo, settings):
        me = echo.worker_id
        assert await registry.get_online_workers("echo") == [me]
        assert await registry.has_online_agent_type("echo") == (True, [me])
        assert await registry.is_worker_online(me)
        assert await check_worker_online(client.redis, me)  # by-framework's function forms
        assert await check_agent_type_online(client.redis, "echo") == (True, [me])
        workers = await registry.get_all_workers()
        assert workers[me]["agent_types"] == ["echo"] and workers[me]["last_seen"] > 0
        sent = await client.send_message("echo", "reads-s", "hello there")
        await until_status(client, "reads-s", sent.message_id, "COMPLETED")
    assert not await registry.is_worker_online(me)
    assert await registry.get_online_workers("echo") == []
    assert await registry.has_online_agent_type("echo", check_active=False) == (False, [])
    found = await registry.get_execution_by_message_id(sent.message_id, "reads-s")
    assert found is not None
    assert found["execution_id"] == sent.execution_id and found["status"] == "COMPLETED"
    assert found["timeline"][0]["status"] == "QUEUED"
    assert await registry.get_execution_by_message_id(sent.message_id) is None  # no session
    assert [r["message_id"] for r in await registry.get_all_session_executions("reads-s")] == [
        sent.message_id
    ]


async def test_by_framework_reload_and_status_calls_of_the_client(
    client: GatewayClient, settings: RedisSettings
) -> None:
    assert await client.get_worker_status("nobody-here") == {
        "worker_id": "nobody-here",
        "online": False,
    }
    async with running(echo, settings):
        status = await client.get_worker_status(echo.worker_id)
        assert status["online"] is True and status["agent_types"] == ["echo"]
        sent = await client.reload_plugins_for_agent_type("echo", reason="new prompts")
        assert sent["agent_type"] == "echo" and sent["worker_ids"] == [echo.worker_id]
        assert sent["dispatched_count"] == 1
        nobody = await client.reload_plugins_for_agent_type("nobody", reload_id="r-1")
        assert nobody == {
            "reload_id": "r-1",
            "agent_type": "nobody",
            "worker_ids": [],
            "dispatched_count": 0,
        }
        acks = await client.collect_reload_acks(sent["reload_id"], block_ms=20_000)
    assert [(a["worker_id"], a["status"]) for a in acks] == [(echo.worker_id, "ok")]
    assert await client.collect_reload_acks("r-1") == []  # no wait: 0 means none


async def test_route_policies_map_to_the_online_check(client: GatewayClient) -> None:
    from byway import ConfigurationError, RoutePolicy

    refused = await client.send_message("nobody", "rp-s", "hi", route_policy=RoutePolicy.FAIL_FAST)
    assert not refused.success and refused.error_code == "AGENT_TYPE_UNAVAILABLE"
    for policy in (RoutePolicy.SEND_ANYWAY, RoutePolicy.QUEUE_ONLY):
        queued = await client.send_message("nobody", f"rp-{policy}", "hi", route_policy=policy)
        assert queued.success, policy
    with pytest.raises(ConfigurationError, match=r"route_policy: .*'WAKE_AND_WAIT'"):
        await client.send_message("nobody", "rp-s", "hi", route_policy=RoutePolicy.WAKE_AND_WAIT)
    entries = await client.redis.xlen(client.keys.agent_stream("nobody"))
    assert entries == 2  # the two queued ones, nothing for the refused
