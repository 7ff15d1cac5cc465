"""RedisSessionService against ADK's own in-memory service: the same calls give the same
sessions, and what differs is only that Redis keeps them for every process."""

from __future__ import annotations

from typing import Any

import pytest
from byway_adk import RedisSessionService
from byway_adk.sessions import AlreadyExistsError, SessionNotFoundError
from google.adk.events import Event, EventActions
from google.adk.sessions import InMemorySessionService, Session
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types

from byway import RedisSettings

pytestmark = pytest.mark.redis


@pytest.fixture
def service(redis: Any, settings: RedisSettings) -> RedisSessionService:
    return RedisSessionService(redis, namespace=settings.namespace, ttl_seconds=600)


def _event(text: str, author: str = "model", **delta: Any) -> Event:
    return Event(
        invocation_id="inv-1",
        author=author,
        content=types.Content(role="model", parts=[types.Part(text=text)]),
        actions=EventActions(state_delta=delta),
    )


def _view(session: Session | None) -> dict[str, Any]:
    assert session is not None
    return {
        "id": session.id,
        "state": session.state,
        "texts": [e.content.parts[0].text for e in session.events if e.content],
    }


async def _play(service: Any) -> dict[str, Any]:
    """One conversation through any session service; what a caller sees of it."""
    session = await service.create_session(
        app_name="app", user_id="ana", session_id="s1", state={"topic": "refunds", "user:tier": 2}
    )
    await service.append_event(session, _event("hi", author="user"))
    await service.append_event(
        session, _event("hello", answer="hello", **{"app:version": 3, "temp:scratch": 1})
    )
    partial = _event("hel", answer="ignored")
    partial.partial = True
    await service.append_event(session, partial)
    await service.create_session(app_name="app", user_id="ana", session_id="s2")
    await service.create_session(app_name="app", user_id="bo", session_id="s3")
    listed = await service.list_sessions(app_name="app", user_id="ana")

    async def s1(config: GetSessionConfig | None = None) -> Session | None:
        return await service.get_session(  # type: ignore[no-any-return]
            app_name="app", user_id="ana", session_id="s1", config=config
        )

    every = await service.list_sessions(app_name="app")
    return {
        "in_memory_copy": {"state": session.state, "events": len(session.events)},
        "stored": _view(await s1()),
        "recent": _view(await s1(GetSessionConfig(num_recent_events=1))),
        "none_recent": _view(await s1(GetSessionConfig(num_recent_events=0))),
        "other_user_sees_user_state": (
            await service.get_session(app_name="app", user_id="bo", session_id="s3")
        ).state,
        "listed": sorted(s.id for s in listed.sessions),
        "listed_state": next(s.state for s in listed.sessions if s.id == "s1"),
        "every": sorted((s.user_id, s.id) for s in every.sessions),
        "user_state": await service.get_user_state(app_name="app", user_id="ana"),
        "missing": await service.get_session(app_name="app", user_id="ana", session_id="nope"),
    }


async def test_the_same_conversation_reads_back_as_adks_in_memory_service_keeps_it(
    service: RedisSessionService,
) -> None:
    ours = await _play(service)
    theirs = await _play(InMemorySessionService())
    assert ours == theirs
    # and what that is, spelled out
    assert ours["stored"] == {
        "id": "s1",
        "state": {"topic": "refunds", "answer": "hello", "user:tier": 2, "app:version": 3},
        "texts": ["hi", "hello"],
    }
    assert ours["recent"]["texts"] == ["hello"] and ours["none_recent"]["texts"] == []
    assert ours["other_user_sees_user_state"] == {"app:version": 3}
    assert ours["every"] == [("ana", "s1"), ("ana", "s2"), ("bo", "s3")]


async def test_events_read_back_equal_to_what_was_appended(service: RedisSessionService) -> None:
    session = await service.create_session(app_name="app", user_id="u", session_id="rt")
    call = Event(
        invocation_id="inv",
        author="agent",
        content=types.Content(
            role="model",
            parts=[types.Part(function_call=types.FunctionCall(id="c1", name="f", args={"x": 1}))],
        ),
        long_running_tool_ids={"c1"},
        custom_metadata={"byway_message_id": "m1"},
    )
    appended = [
        await service.append_event(session, call),
        await service.append_event(session, _event("ok", n=1)),
    ]
    stored = await service.get_session(app_name="app", user_id="u", session_id="rt")
    assert stored is not None and stored.events == appended
    later = await service.get_session(
        app_name="app",
        user_id="u",
        session_id="rt",
        config=GetSessionConfig(after_timestamp=appended[1].timestamp),
    )
    assert later is not None and later.events == appended[1:]


async def test_a_second_writer_merges_instead_of_going_stale(service: RedisSessionService) -> None:
    first = await service.create_session(app_name="app", user_id="u", session_id="two")
    second = await service.get_session(app_name="app", user_id="u", session_id="two")
    assert second is not None
    await service.append_event(first, _event("one", a=1))
    await service.append_event(second, _event("two", b=2))  # an older copy: no error
    stored = await service.get_session(app_name="app", user_id="u", session_id="two")
    assert _view(stored)["state"] == {"a": 1, "b": 2}
    assert _view(stored)["texts"] == ["one", "two"]


async def test_errors_name_what_is_wrong(service: RedisSessionService) -> None:
    await service.create_session(app_name="app", user_id="u", session_id="dup")
    with pytest.raises(AlreadyExistsError, match="dup"):
        await service.create_session(app_name="app", user_id="u", session_id="dup")
    ghost = Session(id="ghost", app_name="app", user_id="u")
    with pytest.raises(SessionNotFoundError, match="ghost"):
        await service.append_event(ghost, _event("x"))
    with pytest.raises(ValueError, match="ttl_seconds"):
        RedisSessionService(service.redis, ttl_seconds=0)


async def test_delete_and_expiry(service: RedisSessionService, redis: Any) -> None:
    session = await service.create_session(app_name="app", user_id="u", session_id="gone")
    await service.append_event(session, _event("x", k=1))
    keys = service._session_keys("app", "u", "gone")
    await service.append_event(session, _event("y", **{"user:tier": 1}))
    others = [service._index_key("app"), service._user_key("app", "u")]
    ttls = [await redis.ttl(k) for k in [*keys, *others]]
    assert all(0 < t <= 600 for t in ttls), ttls  # nothing of it lives forever
    await service.delete_session(app_name="app", user_id="u", session_id="gone")
    assert await service.get_session(app_name="app", user_id="u", session_id="gone") is None
    assert (await service.list_sessions(app_name="app")).sessions == []
    # a session that expired leaves the index when the index is next read
    await service.create_session(app_name="app", user_id="u", session_id="expired")
    await redis.delete(*service._session_keys("app", "u", "expired"))
    assert (await service.list_sessions(app_name="app")).sessions == []
    assert await redis.zcard(service._index_key("app")) == 0
    # an index entry older than the TTL goes at the next write
    await redis.zadd(service._index_key("app"), {'["u", "ancient"]': 1.0})
    await service.create_session(app_name="app", user_id="u", session_id="fresh")
    assert await redis.zrange(service._index_key("app"), 0, -1) == [b'["u", "fresh"]']


async def test_ids_that_share_a_colon_are_different_sessions(service: RedisSessionService) -> None:
    await service.create_session(app_name="app", user_id="a:b", session_id="c", state={"who": 1})
    await service.create_session(app_name="app", user_id="a", session_id="b:c", state={"who": 2})
    one = await service.get_session(app_name="app", user_id="a:b", session_id="c")
    two = await service.get_session(app_name="app", user_id="a", session_id="b:c")
    assert (one.state, two.state) == ({"who": 1}, {"who": 2})  # type: ignore[union-attr]
