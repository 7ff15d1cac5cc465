"""The store: every state change that must be atomic and one round trip, as a Lua script.

The scripts are ``.lua`` files in ``lua/`` (loaded once, by :mod:`byway.store.script`),
each behind a typed wrapper: a frozen struct of named fields that builds its KEYS and
ARGV, and a reply decoded into named fields. :mod:`~byway.store.send` (SEND, RESUME),
:mod:`~byway.store.start` (START), :mod:`~byway.store.finish` (FINISH, SUSPEND),
:mod:`~byway.store.waits` (GROUP_RESULT, CLAIM_DEADLINES), :mod:`~byway.store.session`
(CANCEL_TREE, KICK_SESSION, RENEW_LOCK, TRANSITION) and :mod:`~byway.store.workers`
(RENEW_LEASE, RELEASE_LEASE, FIND_ONLINE).

Each script touches only the keys it is given, and the keys of one call share a slot
under schema v2 (session stream and session registry are tagged with the session id).
Scripts use only commands Redis 6.2 has.

Under schema v1 a script also writes to other entities' keys it names in its arguments
(a handed-on message's control stream, the set of queued sessions): one round trip, all
atomic. A Redis Cluster forbids that, so under schema v2 scripts run in *outbox* mode:
they write only their own slot and return the rest, which the caller writes next (see
``Flow.forward``). A message handed on stays at the head of its session's queue until it
starts, so if the caller dies before forwarding it the orphan sweep sends it again.
Execution records are JSON in the session registry hash; ``timeline`` always holds at
least one entry, so cjson never sees an empty array (which it would re-encode as ``{}``).
"""
