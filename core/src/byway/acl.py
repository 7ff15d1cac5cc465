"""Least-privilege Redis ACL rules for Byway's three roles, as ``byway acl`` prints them.

- **worker**: every command a worker, its recovery, its adapters (LangGraph checkpoints
  ``<ns>:lg:*``, ADK sessions ``<ns>:adk:*``) and ``byway dlq`` run, scripts included, on
  the namespace's keys only (``~<ns>:*``). No administrative or dangerous command
  (FLUSHALL, FLUSHDB, CONFIG, KEYS, DEBUG, ACL, SHUTDOWN, MONITOR...).
- **client** (send, stream, resume, cancel): XADD to control streams (agent-type and
  worker streams) and reads of session streams, execution records, worker membership
  and leases, agent types' strategies, reload acknowledgements. No scripts: EVAL would write whatever its keys
  allow. Under Redis 7 the keys are split into read-only (``%R~``) and write-only
  (``%W~``) patterns, so a client cannot write an execution record or a session stream;
  GatewayClient then takes its script-free path (see :mod:`byway.client`).
- **reader** (``byway status``, a dashboard): read-only commands on the namespace, and
  SCAN (which key patterns do not restrict: it lists key *names* of the whole database).

Redis 6.2 knows only ``~`` patterns, which grant reads and writes alike: there a client
can XADD to a session stream (or any key it may read). Its rules say so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from byway.errors import ConfigurationError
from byway.keys import Keys

__all__ = ["REDIS_VERSIONS", "ROLES", "AclUser", "acl_user", "render"]

ROLES = ("worker", "client", "reader")
#: rule dialects: 7.2 (and later) has CLIENT SETINFO, which redis-py sends on connect;
#: 7.0 does not; 6.2 cannot separate read from write key permissions
REDIS_VERSIONS = ("7.2", "7.0", "6.2")
FORMATS = ("setuser", "aclfile", "json")

_SUMMARY = {
    "worker": "runs tasks: streams, records, scripts, leases, adapters' keys; namespace only",
    "client": "send, stream, resume, cancel: XADD to control streams, reads; no scripts",
    "reader": "byway status, dashboards: read-only commands on the namespace",
}

#: what every connection of redis-py sends (AUTH/HELLO on connect, PING health checks,
#: SELECT for a database in the URL, CLIENT SETNAME if a name is set)
_CONNECTION = ("ping", "hello", "auth", "select", "client|setname", "client|getname")
#: what a cluster client asks to find the nodes and route commands (schema v2)
_CLUSTER = ("cluster|slots", "cluster|shards", "cluster|nodes", "readonly", "command")

_WORKER = (
    # streams: control queues, session events, dead letters, reload acks
    "xadd", "xreadgroup", "xread", "xack", "xclaim", "xpending", "xrange", "xrevrange",
    "xlen", "xtrim", "xdel", "xgroup|create", "xgroup|createconsumer", "xinfo|groups",
    "xinfo|stream", "xinfo|consumers",
    # execution records, task groups, checkpoints, ADK state
    "hget", "hmget", "hgetall", "hset", "hsetnx", "hdel", "hexists", "hincrby", "hlen",
    # leases, locks, strategies, snapshots
    "get", "set", "del", "exists", "expire", "pexpire", "ttl", "pttl",
    # session queues, history, ADK events
    "lpush", "rpush", "lpop", "lindex", "llen", "lrange", "ltrim",
    # membership, queued sessions, checkpoint namespaces
    "sadd", "srem", "smembers", "srandmember", "sismember", "scard",
    # deadlines, checkpoint ids, ADK session index
    "zadd", "zrem", "zrange", "zrangebyscore", "zrangebylex", "zrevrangebylex",
    "zremrangebyscore", "zcard", "zscore",
    # every state change is a script
    "evalsha", "eval", "script|load", "script|exists",
    # service discovery's heartbeat and lookup scripts read the server's clock
    "time",
)  # fmt: skip

_CLIENT = (
    "xadd", "xread", "xrange", "xrevrange", "xlen",
    "hget", "hmget", "hgetall", "hexists",
    "get", "exists", "smembers", "sismember", "scard",
)  # fmt: skip

_READER = (
    "xread", "xrange", "xrevrange", "xlen", "xpending", "xinfo|groups", "xinfo|stream",
    "xinfo|consumers",
    "hget", "hmget", "hgetall", "hexists", "hlen", "hkeys", "hscan",
    "get", "mget", "exists", "ttl", "pttl", "type",
    "lrange", "llen", "lindex",
    "smembers", "sismember", "scard", "sscan",
    "zrange", "zrangebyscore", "zrangebylex", "zrevrangebylex", "zcard", "zscore", "zscan",
    "scan",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AclUser:
    """One ACL user: its name, role and rules (``ACL SETUSER <name> <rules...>``)."""

    name: str
    role: str
    rules: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def setuser(self) -> str:
        """The ``ACL SETUSER`` command (for redis-cli; no token needs quoting there)."""
        return " ".join(("ACL", "SETUSER", self.name, *self.rules))

    def aclfile(self) -> str:
        """The line of an ACL file (``aclfile`` in redis.conf)."""
        return " ".join(("user", self.name, *self.rules))


def _client_keys(keys: Keys) -> tuple[list[str], list[str]]:
    """(write patterns, read patterns) of the client role, built from the key module."""
    write = [keys.agent_stream("*"), keys.worker_stream("*")]
    read = [
        keys.session_stream("*"),
        keys.session_registry("*"),
        keys.known_workers(),
        keys.worker_online("*"),
        keys.agent_type_workers("*"),
        keys.worker_agent_types("*"),
        keys.agent_type_strategy("*"),
        keys.plugin_reload_ack("*"),
    ]
    return write, read


def acl_user(
    role: str,
    keys: Keys,
    *,
    user: str | None = None,
    redis_version: str = "7.2",
    password_sha256: str | None = None,
) -> AclUser:
    """The ACL user of ``role`` for ``keys``' namespace and schema.

    ``password_sha256`` (hex) adds ``#<hash>``; without it the rules set no password and
    the user cannot log in until one is added (``>secret`` or ``#sha256``).
    """
    if role not in ROLES:
        raise ConfigurationError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
    if redis_version not in REDIS_VERSIONS:
        raise ConfigurationError(
            f"redis_version: expected one of {', '.join(REDIS_VERSIONS)}, got {redis_version!r}"
        )
    name = user or f"byway-{role}"
    if not name or any(c.isspace() or c in "{}\"'" for c in name):
        raise ConfigurationError(
            f"user: expected a name without spaces, quotes or braces, got {name!r}"
        )
    if password_sha256 is not None and (
        len(password_sha256) != 64 or any(c not in "0123456789abcdef" for c in password_sha256)
    ):
        raise ConfigurationError("password_sha256: expected 64 lowercase hex digits")
    split = redis_version != "6.2"  # %R~ / %W~ exist from Redis 7.0 on
    read, write = ("%R~", "%W~") if split else ("~", "~")
    namespace_keys = f"{keys.namespace}:*"
    notes: list[str] = []
    commands: tuple[str, ...]
    if role == "worker":
        key_rules = [f"~{namespace_keys}"]
        commands = _WORKER
    elif role == "client":
        writes, reads = _client_keys(keys)
        key_rules = [f"{write}{p}" for p in writes] + [f"{read}{p}" for p in reads]
        commands = _CLIENT
        if not split:
            notes.append(
                "Redis 6.2 cannot separate reads from writes: this client can also XADD to "
                "session streams and to any key it may read; use Redis 7 for a client "
                "that cannot write records or events"
            )
    else:
        key_rules = [f"{read}{namespace_keys}"]
        commands = _READER
        notes.append("SCAN lists key names of the whole database (key patterns do not apply)")
    connection = list(_CONNECTION)
    if redis_version == "7.2":
        connection.append("client|setinfo")
    if keys.schema == "v2":
        connection.extend(_CLUSTER)
    rules = [
        "reset",
        "on",
        *([f"#{password_sha256}"] if password_sha256 else []),
        *key_rules,
        "resetchannels",
        "-@all",
        *(f"+{c}" for c in (*connection, *commands)),
    ]
    return AclUser(name=name, role=role, rules=tuple(rules), notes=tuple(notes))


def password_hash(password: str) -> str:
    """The SHA-256 hex digest ACL rules take for a password (``#<hash>``)."""
    if not password:
        raise ConfigurationError("password: expected a non-empty password")
    return hashlib.sha256(password.encode()).hexdigest()


def render(users: list[AclUser], keys: Keys, *, fmt: str, redis_version: str) -> str:
    """``users`` as redis-cli commands, ACL file lines or JSON (with comments on top)."""
    if fmt not in FORMATS:
        raise ConfigurationError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "json":
        return json.dumps(
            [
                {"user": u.name, "role": u.role, "rules": list(u.rules), "notes": list(u.notes)}
                for u in users
            ],
            indent=2,
        )
    lines = [
        f"# Byway ACL users for namespace {keys.namespace!r}, key schema {keys.schema}, "
        f"Redis {redis_version}{'+' if redis_version == '7.2' else ''}",
    ]
    if redis_version == "6.2":
        lines.append("# Redis 6.2 cannot separate read from write key permissions (see notes)")
    if not any(r.startswith("#") for u in users for r in u.rules):
        lines.append("# no password set: add '>secret' (or '#<sha256>') before the user can log in")
    for u in users:
        lines.append(f"# {u.role}: {_SUMMARY[u.role]}")
        lines.extend(f"#   note: {note}" for note in u.notes)
        lines.append(u.setuser() if fmt == "setuser" else u.aclfile())
    return "\n".join(lines)
