"""RedisSessionService: ADK sessions kept in Redis, shared by every worker.

ADK's own services keep a session in one process's memory (``InMemorySessionService``)
or in a SQL database whose optimistic check raises a stale-session error when two writers
touched the same session. Byway runs one writer per session at a time, and this service
never overwrites what another writer wrote: an appended event is one ``RPUSH``, and a
state delta is merged key by key (``HSET``), so there is nothing to go stale.

Layout (``<ns>`` = the Byway namespace, braces literal: one Redis Cluster slot per session)::

    <ns>:adk:<app>:session:{<n>:<user>:<id>}:meta     hash   created, updated (n: len(user))
    <ns>:adk:<app>:session:{<n>:<user>:<id>}:state    hash   state key -> JSON value
    <ns>:adk:<app>:session:{<n>:<user>:<id>}:events   list   Event JSON, oldest first
    <ns>:adk:<app>:user:<user>:state              hash   ``user:`` state, without the prefix
    <ns>:adk:<app>:app_state                      hash   ``app:`` state, without the prefix
    <ns>:adk:<app>:sessions                       zset   [user, id] JSON by last update

A session's keys expire ``ttl_seconds`` after their last write, its user's state and
the index after the user's (the app's) last write;
``temp:`` state is never stored, as in ADK's own services.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from google.adk.events import Event
from google.adk.sessions import BaseSessionService, Session
from google.adk.sessions.base_session_service import GetSessionConfig, ListSessionsResponse
from google.adk.sessions.state import State

from byway.store.script import Script

__all__ = ["RedisSessionService"]

try:  # ADK >= 1.20 names these; older releases raise ValueError
    from google.adk.errors.already_exists_error import AlreadyExistsError
except ImportError:  # pragma: no cover - older google-adk
    AlreadyExistsError = ValueError  # type: ignore[misc,assignment]
try:
    from google.adk.errors.session_not_found_error import SessionNotFoundError
except ImportError:  # pragma: no cover - older google-adk
    SessionNotFoundError = ValueError  # type: ignore[misc,assignment]

# KEYS meta, state; ARGV now, ttl, then state field/value pairs. 0 if the session exists.
_CREATE = Script(
    """
if redis.call('HSETNX', KEYS[1], 'created', ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'updated', ARGV[1])
if #ARGV > 2 then redis.call('HSET', KEYS[2], unpack(ARGV, 3)) end
if tonumber(ARGV[2]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  if #ARGV > 2 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
end
return 1
"""
)

# KEYS meta, state, events; ARGV updated, ttl, event JSON, then state field/value pairs.
# 0 if the session does not exist (deleted, or expired).
_APPEND = Script(
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'updated', ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[3])
if #ARGV > 3 then redis.call('HSET', KEYS[2], unpack(ARGV, 4)) end
if tonumber(ARGV[2]) > 0 then
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
end
return 1
"""
)


def _split_state(delta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(app, user, session) parts of a state delta; ``temp:`` keys are dropped."""
    app: dict[str, Any] = {}
    user: dict[str, Any] = {}
    session: dict[str, Any] = {}
    for key, value in delta.items():
        if key.startswith(State.APP_PREFIX):
            app[key.removeprefix(State.APP_PREFIX)] = value
        elif key.startswith(State.USER_PREFIX):
            user[key.removeprefix(State.USER_PREFIX)] = value
        elif not key.startswith(State.TEMP_PREFIX):
            session[key] = value
    return app, user, session


def _encoded(values: dict[str, Any]) -> dict[str, str]:
    return {key: json.dumps(value, default=str) for key, value in values.items()}


def _pairs(values: dict[str, Any]) -> list[str]:
    return [item for pair in _encoded(values).items() for item in pair]


def _decode(raw: dict[Any, Any]) -> dict[str, Any]:
    return {_text(k): json.loads(v) for k, v in (raw or {}).items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisSessionService(BaseSessionService):
    """An ADK ``BaseSessionService`` on Redis (standalone or Cluster).

    ``redis`` is a redis-py asyncio client (a worker passes its own); ``namespace`` keeps
    the keys beside the Byway keys of the same deployment. ``ttl_seconds`` (``None``:
    keep forever) bounds how long an idle session stays.
    """

    def __init__(
        self, redis: Any, *, namespace: str = "byai_gateway", ttl_seconds: int | None = 7 * 86400
    ) -> None:
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds: expected a positive number or None, got {ttl_seconds}")
        self.redis = redis
        self.namespace = namespace
        self.ttl_seconds = ttl_seconds

    # -- keys --------------------------------------------------------------------------

    def _session_keys(self, app_name: str, user_id: str, session_id: str) -> list[str]:
        # the user id's length keeps (user "a:b", session "c") apart from (user "a", "b:c")
        tag = f"{len(user_id)}:{user_id}:{session_id}"
        base = f"{self.namespace}:adk:{app_name}:session:{{{tag}}}"
        return [f"{base}:meta", f"{base}:state", f"{base}:events"]

    def _user_key(self, app_name: str, user_id: str) -> str:
        return f"{self.namespace}:adk:{app_name}:user:{user_id}:state"

    def _app_key(self, app_name: str) -> str:
        return f"{self.namespace}:adk:{app_name}:app_state"

    def _index_key(self, app_name: str) -> str:
        return f"{self.namespace}:adk:{app_name}:sessions"

    @property
    def _ttl(self) -> int:
        return self.ttl_seconds or 0

    # -- BaseSessionService ------------------------------------------------------------

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        session_id = (session_id or "").strip() or uuid.uuid4().hex
        app_delta, user_delta, own = _split_state(state or {})
        meta, state_key, _ = self._session_keys(app_name, user_id, session_id)
        now = time.time()
        created = await _CREATE.run(
            self.redis, keys=[meta, state_key], args=[repr(now), self._ttl, *_pairs(own)]
        )
        if not int(created):
            raise AlreadyExistsError(f"Session with id {session_id} already exists.")
        await self._write_shared(app_name, user_id, session_id, now, app_delta, user_delta)
        session = await self.get_session(app_name=app_name, user_id=user_id, session_id=session_id)
        assert session is not None
        return session

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        meta, state_key, events_key = self._session_keys(app_name, user_id, session_id)
        recent = config.num_recent_events if config else None
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(meta)
            pipe.hgetall(state_key)
            pipe.lrange(events_key, -recent if recent else 0, -1)
            pipe.hgetall(self._user_key(app_name, user_id))
            pipe.hgetall(self._app_key(app_name))
            meta_raw, own, raw_events, user_state, app_state = await pipe.execute()
        if not meta_raw:
            return None
        if recent == 0:
            raw_events = []
        events = [Event.model_validate_json(e) for e in raw_events]
        if config and config.after_timestamp is not None:
            events = [e for e in events if e.timestamp >= config.after_timestamp]
        session = Session(
            id=session_id,
            app_name=app_name,
            user_id=user_id,
            state=self._merged(own, user_state, app_state),
            events=events,
            last_update_time=float(_text(meta_raw.get(b"updated", meta_raw.get("updated", 0)))),
        )
        return session

    @staticmethod
    def _merged(own: Any, user_state: Any, app_state: Any) -> dict[str, Any]:
        state = _decode(own)
        state.update({State.USER_PREFIX + k: v for k, v in _decode(user_state).items()})
        state.update({State.APP_PREFIX + k: v for k, v in _decode(app_state).items()})
        return state

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        index = self._index_key(app_name)
        members = [json.loads(m) for m in await self.redis.zrange(index, 0, -1)]
        if user_id is not None:
            members = [m for m in members if m[0] == user_id]
        if not members:
            return ListSessionsResponse()
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid, sid in members:
                meta, state_key, _ = self._session_keys(app_name, uid, sid)
                pipe.hget(meta, "updated")
                pipe.hgetall(state_key)
                pipe.hgetall(self._user_key(app_name, uid))
            pipe.hgetall(self._app_key(app_name))
            *rows, app_state = await pipe.execute()
        sessions: list[Session] = []
        gone: list[str] = []
        for i, (uid, sid) in enumerate(members):
            updated, own, user_state = rows[3 * i : 3 * i + 3]
            if updated is None:  # expired: its index entry goes too
                gone.append(json.dumps([uid, sid]))
                continue
            sessions.append(
                Session(
                    id=sid,
                    app_name=app_name,
                    user_id=uid,
                    state=self._merged(own, user_state, app_state),
                    last_update_time=float(_text(updated)),
                )
            )
        if gone:
            await self.redis.zrem(index, *gone)
        sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
        return ListSessionsResponse(sessions=sessions)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in self._session_keys(app_name, user_id, session_id):
                pipe.delete(key)
            pipe.zrem(self._index_key(app_name), json.dumps([user_id, session_id]))
            await pipe.execute()

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        return _decode(await self.redis.hgetall(self._user_key(app_name, user_id)))

    async def append_event(self, session: Session, event: Event) -> Event:
        if event.partial:
            return event
        delta = dict(event.actions.state_delta) if event.actions else {}
        # ADK's own bookkeeping: temp: state on the in-memory session, the event appended
        event = await super().append_event(session=session, event=event)
        app_delta, user_delta, own = _split_state(delta)
        meta, state_key, events_key = self._session_keys(
            session.app_name, session.user_id, session.id
        )
        stored = await _APPEND.run(
            self.redis,
            keys=[meta, state_key, events_key],
            args=[
                repr(event.timestamp),
                self._ttl,
                event.model_dump_json(exclude_none=True),
                *_pairs(own),
            ],
        )
        if not int(stored):
            raise SessionNotFoundError(f"Session {session.id} not found.")
        await self._write_shared(
            session.app_name, session.user_id, session.id, event.timestamp, app_delta, user_delta
        )
        session.last_update_time = event.timestamp
        return event

    async def _write_shared(
        self,
        app_name: str,
        user_id: str,
        session_id: str,
        updated: float,
        app_delta: dict[str, Any],
        user_delta: dict[str, Any],
    ) -> None:
        """The writes outside the session's slot: its index entry, user and app state."""
        index = self._index_key(app_name)
        user_key = self._user_key(app_name, user_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(index, {json.dumps([user_id, session_id]): updated})
            if user_delta:
                pipe.hset(user_key, mapping=_encoded(user_delta))
            if self._ttl:
                # the index holds the sessions written within the TTL (the others have
                # expired), and lives as long as its newest one; user state lives as long
                # as the user's newest session
                pipe.zremrangebyscore(index, "-inf", f"({updated - self._ttl}")
                pipe.expire(index, self._ttl)
                pipe.expire(user_key, self._ttl)
            if app_delta:
                pipe.hset(self._app_key(app_name), mapping=_encoded(app_delta))
            await pipe.execute()
