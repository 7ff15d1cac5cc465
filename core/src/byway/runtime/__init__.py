"""The worker's runtime: what :class:`~byway.runtime.runner.WorkerRunner` is made of.

One module per job, arrows pointing down this list:

- ``runner``: the ``WorkerRunner`` facade (construction, lifecycle, drain, signals,
  readiness) composing the parts below;
- ``intake``: the consume loop, stream readers, decoding, dead letters;
- ``maintenance``: heartbeat, rejoin, session locks, deadlines, orphan kicks, sweeps;
- ``starter``: START batches (a pipelined round trip moves new executions to RUNNING);
- ``executor``: one task's span, plugin hooks, handler and result; cancels;
- ``ender``: finish and suspend; ``ends``: end batching (one round trip for many ends);
- ``plugin_host``: plugin loading, reload, agent-config snapshots;
- ``recovery``: reclaim and hand-back of pending entries, given the slots and Redis;
- ``services``: what every part shares (Redis, keys, flow, config, slots) and what a
  task's ``AgentContext`` uses; ``history`` and ``outbox``: the history sink and the
  outbox mode, each a strategy chosen once; ``slots``: running / backlog / quarantine.

This package's ``__init__`` imports nothing: ``from byway.runtime.runner import
WorkerRunner`` (or ``from byway import WorkerRunner``).
"""
