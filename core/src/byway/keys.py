"""Every Redis key name Byway uses, for both key schemas, and nowhere else.

Schema v1 (standalone Redis) is the by-framework layout: ``<ns>:ctrl:agent_type:<T>``,
``<ns>:session:<S>:data_stream`` and so on. Schema v2 (Redis Cluster) is by-framework's v2
layout: it prefixes ``<ns>:v2:`` and wraps per-worker, per-session, per-group and
per-agent-type ids in a hash tag (``{...}``), so that the keys of one entity share a slot
and every script touches one slot: ``byai_gateway:v2:session:{S}:data_stream`` and
``byai_gateway:v2:session:{S}:registry`` live with ``S``. Registry keys put the tagged id
before their suffix (``registry:worker:{W}:online``), and the agent-type control stream
is untagged (``ctrl:agent_type:<T>``), as by-framework writes them.

Service discovery keeps by-framework's layout under v1 (``<ns>:sd:active:<svc>``,
``<ns>:sd:instances:<svc>``) and tags the service name under v2
(``<ns>:v2:sd:{svc}:active``), so one service's keys share a slot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from byway.errors import ConfigurationError

__all__ = ["DEFAULT_NAMESPACE", "EXEC_FIELD_PREFIX", "MSG_MAP_PREFIX", "Keys"]

DEFAULT_NAMESPACE = "byai_gateway"
EXEC_FIELD_PREFIX = "exec:"
MSG_MAP_PREFIX = "msg_map:"

_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder for one namespace and schema.

    >>> Keys().session_stream("s1")
    'byai_gateway:session:s1:data_stream'
    >>> Keys(schema="v2").session_stream("s1")
    'byai_gateway:v2:session:{s1}:data_stream'
    """

    namespace: str = DEFAULT_NAMESPACE
    schema: Literal["v1", "v2"] = "v1"

    def __post_init__(self) -> None:
        if not _NAMESPACE_RE.match(self.namespace):
            raise ConfigurationError(
                f"namespace: expected 1-64 characters of [A-Za-z0-9_.:-], got {self.namespace!r}"
            )
        if self.schema not in ("v1", "v2"):
            raise ConfigurationError(f"schema: expected 'v1' or 'v2', got {self.schema!r}")

    # -- helpers ---------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return f"{self.namespace}:v2" if self.schema == "v2" else self.namespace

    def _id(self, value: str) -> str:
        """An id as it appears in a key: hash-tagged under schema v2."""
        return f"{{{value}}}" if self.schema == "v2" else value

    # -- control plane ---------------------------------------------------------------------

    def agent_stream(self, agent_type: str) -> str:
        """Control queue of one agent type (stream, consumer group per worker pool)."""
        return f"{self.prefix}:ctrl:agent_type:{agent_type}"

    def worker_stream(self, worker_id: str) -> str:
        """Direct control queue of one worker (cancel, reload, debug routing)."""
        return f"{self.prefix}:ctrl:worker:{self._id(worker_id)}"

    def agent_stream_prefix(self) -> str:
        """Prefix shared by every agent-type stream (for status listings)."""
        return f"{self.prefix}:ctrl:agent_type:"

    # -- data plane ------------------------------------------------------------------------

    def session_stream(self, session_id: str) -> str:
        """Events of one session."""
        return f"{self.prefix}:session:{self._id(session_id)}:data_stream"

    def session_registry(self, session_id: str) -> str:
        """Execution records of one session: ``exec:<id>`` → JSON, ``msg_map:<mid>`` → id."""
        return f"{self.prefix}:session:{self._id(session_id)}:registry"

    def session_lock(self, session_id: str) -> str:
        """The message id of the session's running root task (one writer per session)."""
        return f"{self.prefix}:session:{self._id(session_id)}:lock"

    def session_queue(self, session_id: str) -> str:
        """Root messages waiting for the session to be free (list of queue items)."""
        return f"{self.prefix}:session:{self._id(session_id)}:queue"

    def session_history(self, session_id: str) -> str:
        """The session's conversation history (list of JSON turns, capped)."""
        return f"{self.prefix}:session:{self._id(session_id)}:history"

    def queued_sessions(self) -> str:
        """Set of session ids that have root messages waiting (swept for orphans)."""
        return f"{self.prefix}:queued_sessions"

    def task_group(self, group_id: str) -> str:
        return f"{self.prefix}:task_group:{self._id(group_id)}"

    def task_group_results(self, group_id: str) -> str:
        return f"{self.prefix}:task_group:{self._id(group_id)}:results"

    # -- registry --------------------------------------------------------------------------

    def _registry(self, entity: str, value: str, name: str) -> str:
        if self.schema == "v2":
            return f"{self.prefix}:registry:{entity}:{{{value}}}:{name}"
        return f"{self.prefix}:registry:{entity}:{name}:{value}"

    def known_workers(self) -> str:
        """Set of every worker id that ever registered (enumeration for ``byway status``)."""
        return f"{self.prefix}:registry:workers"

    def worker_online(self, worker_id: str) -> str:
        """Heartbeat lease (string with TTL, JSON with a token). Present = online."""
        return self._registry("worker", worker_id, "online")

    def agent_type_workers(self, agent_type: str) -> str:
        """Set: agent type → worker ids."""
        return self._registry("agent_type", agent_type, "workers")

    def worker_agent_types(self, worker_id: str) -> str:
        """Set: worker → agent types."""
        return self._registry("worker", worker_id, "agent_types")

    def agent_type_strategy(self, agent_type: str) -> str:
        """The agent type's multitask strategy (enqueue, reject, interrupt), set by workers."""
        return self._registry("agent_type", agent_type, "strategy")

    def deadlines(self) -> str:
        """Sorted set of waits with a deadline (score: ms), swept by every worker."""
        return f"{self.prefix}:deadlines"

    def dead_letters(self) -> str:
        """Stream of entries no worker could run (malformed, or too many deliveries)."""
        return f"{self.prefix}:dead_letter"

    def signing_seen(self, mac: str) -> str:
        """A signature a worker accepted (string with TTL: its stream and entry id), so a
        second entry carrying it is refused as replayed. Keyed by the mac's first 32 hex."""
        return f"{self.prefix}:signing:seen:{mac[:32]}"

    def agent_configs_snapshot(self, snapshot_key: str) -> str:
        return f"{self.prefix}:agent_configs_snapshot:{snapshot_key}"

    def plugin_reload_ack(self, reload_id: str) -> str:
        return f"{self.prefix}:plugin_reload:{reload_id}:ack"

    # -- service discovery -----------------------------------------------------------------

    def _sd(self, service: str, name: str) -> str:
        if self.schema == "v2":
            return f"{self.prefix}:sd:{{{service}}}:{name}"
        return f"{self.prefix}:sd:{name}:{service}"

    def sd_services(self) -> str:
        """Set of every service name that ever registered."""
        return f"{self.prefix}:sd:services"

    def sd_active(self, service: str) -> str:
        """Sorted set: instance id → its last heartbeat (ms, the score)."""
        return self._sd(service, "active")

    def sd_instances(self, service: str) -> str:
        """Hash: instance id → the instance (JSON: host, port, protocol, metadata...)."""
        return self._sd(service, "instances")

    def sd_leases(self, service: str) -> str:
        """Hash: instance id → its lease (ms after its last heartbeat that it stays live)."""
        return self._sd(service, "leases")
