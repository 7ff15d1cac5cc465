"""The tables, as an ordered list of migrations, and :func:`setup` that applies them.

``MIGRATIONS[i]`` takes the schema from version ``i`` to ``i + 1``; a released migration is
never edited, only followed by new ones. :func:`setup` applies what the database lacks in
one transaction under an advisory lock (workers that start together apply each migration
once) and records each version in ``byway_history_migrations``; run twice, it does nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MIGRATIONS", "schema_version", "setup"]

#: a fixed key for pg_advisory_xact_lock: "byway history" in ASCII, truncated to 63 bits
_LOCK_KEY = 0x6279776179686973

MIGRATIONS: list[str] = [
    # 1: sessions, their messages, and the execution log
    """
    CREATE TABLE byway_sessions (
        session_id  text PRIMARY KEY,
        user_code   text NOT NULL DEFAULT '',
        agent_types text[] NOT NULL DEFAULT '{}',
        created_at  timestamptz NOT NULL,
        updated_at  timestamptz NOT NULL
    );
    -- a user's sessions, most recently active first
    CREATE INDEX byway_sessions_by_user ON byway_sessions (user_code, updated_at, session_id);

    CREATE TABLE byway_messages (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        session_id  text NOT NULL REFERENCES byway_sessions ON DELETE CASCADE,
        role        text NOT NULL,
        content     jsonb,
        message_id  text NOT NULL DEFAULT '',
        agent_type  text NOT NULL DEFAULT '',
        status      text NOT NULL DEFAULT '',
        metadata    jsonb NOT NULL DEFAULT '{}',
        -- the turn's own timestamp (ms, 0 when it had none)
        timestamp_ms bigint NOT NULL DEFAULT 0,
        -- the order of a session's turns: their timestamp, else when they were appended
        created_at  timestamptz NOT NULL
    );
    -- a session's history, either way round, paged by (created_at, id)
    CREATE INDEX byway_messages_by_session ON byway_messages (session_id, created_at, id);

    -- one row per execution: who called whom, its latest status
    CREATE TABLE byway_executions (
        execution_id      text PRIMARY KEY,
        session_id        text NOT NULL,
        message_id        text NOT NULL,
        parent_message_id text NOT NULL DEFAULT '',
        trace_id          text NOT NULL DEFAULT '',
        agent_type        text NOT NULL DEFAULT '',
        source_agent_type text NOT NULL DEFAULT '',
        task_group_id     text NOT NULL DEFAULT '',
        user_code         text NOT NULL DEFAULT '',
        depth             integer NOT NULL DEFAULT 0,
        status            text NOT NULL,
        created_at        timestamptz NOT NULL,
        finished_at       timestamptz,
        -- timeline entries the row reflects: a record that knows fewer never overwrites it
        steps             integer NOT NULL DEFAULT 0
    );
    -- a session's call tree
    CREATE INDEX byway_executions_by_session ON byway_executions (session_id, created_at);

    -- the append-only log: every state of every execution, by its place in the timeline
    CREATE TABLE byway_transitions (
        execution_id text NOT NULL,
        seq          integer NOT NULL,
        session_id   text NOT NULL,
        status       text NOT NULL,
        at           timestamptz NOT NULL,
        worker_id    text NOT NULL DEFAULT '',
        detail       jsonb,
        recorded_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (execution_id, seq)
    );
    -- a session's whole log in time order (the execution's own timeline uses the key)
    CREATE INDEX byway_transitions_by_session ON byway_transitions (session_id, at);

    CREATE FUNCTION byway_transitions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'byway_transitions is append-only (% refused)', TG_OP;
    END $$;
    CREATE TRIGGER byway_transitions_append_only BEFORE UPDATE OR DELETE ON byway_transitions
        FOR EACH ROW EXECUTE FUNCTION byway_transitions_append_only();
    """,
    # 2: each turn once. A task ended twice (a rerun after a lost lease) appends its turns
    # again; once_key (message id, role, status, run) tells a repeat from a new turn. Turns
    # without a message id, and rows written before this version, have none (NULLs differ)
    """
    ALTER TABLE byway_messages ADD COLUMN once_key text;
    CREATE UNIQUE INDEX byway_messages_once ON byway_messages (session_id, once_key);
    """,
]


async def schema_version(conn: Any) -> int:
    """The version the database is at (0: none of these tables)."""
    exists = await conn.fetchval("SELECT to_regclass('byway_history_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(
        await conn.fetchval("SELECT coalesce(max(version), 0) FROM byway_history_migrations")
    )


async def setup(conn: Any) -> int:
    """Bring the schema up to date (idempotent, safe from many processes at once);
    returns the version it is at."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS byway_history_migrations ("
            " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await schema_version(conn)
        for version, sql in enumerate(MIGRATIONS[current:], start=current + 1):
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO byway_history_migrations (version) VALUES ($1)", version
            )
    return max(current, len(MIGRATIONS))
