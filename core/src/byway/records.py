"""The records Byway keeps in Redis: one execution record per task, and worker leases.

:class:`ExecutionRecord` is the one shape of an execution, whoever reads it (the registry,
the runner, recovery, the client's cancel paths, history stores). It is born in Python
(:func:`new_record`, written by SEND or START) and changed only by the Lua scripts after
that, so it holds every field either writes. Two habits of the scripts shape it:

- A field the scripts add later (``step_attempts``, ``solo_runs``, ``config_version``,
  ``trace``, ``waited``) is absent from a fresh record, and Lua tells absent from ``0``:
  ``rec['step_attempts'] or 1`` is ``0`` when the field is ``0``. Those fields are
  :data:`msgspec.UNSET` until a script writes them (msgspec encodes a record without
  them then). ``stream_name``, ``redis_message_id`` and ``result`` are written by the scripts
  too; they read as ``""``/``None`` until then, and :func:`new_record` leaves them out.
- cjson writes an empty list as ``{}``: ``timeline`` accepts both.

:class:`WorkerInfo` is what a worker's online lease holds.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from byway._process import ProcessIdentity
from byway.protocol import MessageHeader, now_ms

__all__ = [
    "ExecutionRecord",
    "TimelineEntry",
    "WorkerInfo",
    "decode_record",
    "decode_worker",
    "new_record",
    "started_record",
]

#: how long a session's execution records live after their last change (seconds)
DEFAULT_RECORD_TTL_S = 7 * 24 * 3600


class TimelineEntry(msgspec.Struct, kw_only=True):
    """One step of an execution (the by-framework shape: ``status`` and ``timestamp``)."""

    status: str
    timestamp: int
    worker_id: str = ""
    detail: dict[str, Any] | None = None


class ExecutionRecord(msgspec.Struct, kw_only=True):
    """One execution as stored in its session's registry hash."""

    execution_id: str
    message_id: str = ""
    session_id: str = ""
    trace_id: str = ""
    status: str = ""
    target_agent_type: str = ""
    source_agent_type: str = ""
    parent_message_id: str = ""
    task_group_id: str = ""
    user_code: str = ""
    depth: int = 0
    worker_id: str = ""
    #: the stream and entry of the command that started the current run (START)
    stream_name: str = ""
    redis_message_id: str = ""
    cancel_requested: bool = False
    cancel_reason: str = ""
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    updated_at: int = 0
    #: runs started from a new entry, plus takeovers of a run whose worker died
    attempts: int = 0
    # cjson re-encodes an empty list as {}: accept both
    timeline: list[TimelineEntry] | dict[str, Any] = msgspec.field(default_factory=list)
    #: the end as FINISH wrote it: ``status``, and ``error`` and ``usage`` when there are
    result: dict[str, Any] | None = None
    # -- written by the scripts only, absent (UNSET) until then --
    #: starts of the current step: 1 on a first start or a resume, more after the run
    #: died with its worker (START)
    step_attempts: int | UnsetType = UNSET
    #: runs alone after its worker died (START; a poison task exhausts them)
    solo_runs: int | UnsetType = UNSET
    #: the agent-config snapshot the execution started with (START, kept on)
    config_version: str | UnsetType = UNSET
    #: the trace context of the run that suspended (SUSPEND; its resume continues it)
    trace: dict[str, Any] | UnsetType = UNSET
    #: True while a wait and state are kept for it (SUSPEND; FINISH removes it)
    waited: bool | UnsetType = UNSET

    @property
    def states(self) -> list[str]:
        """The states of the timeline, in order."""
        return [e.status for e in self.steps]

    @property
    def steps(self) -> list[TimelineEntry]:
        """The timeline (``[]`` when cjson wrote it as ``{}``)."""
        return self.timeline if isinstance(self.timeline, list) else []

    @property
    def is_retry(self) -> bool:
        """Whether this run repeats one that did not end (its worker died): START counts
        more than one start of the current step."""
        return (self.step_attempts or 1) > 1

    @property
    def user_answers(self) -> int:
        """How many times the user answered this execution's questions so far (RESUMED by
        the user in its timeline): the run a root task's turns belong to."""
        return sum(1 for step in self.steps if _by_user(step))

    @property
    def resumed_by_user(self) -> bool:
        """Whether this run was started by the user's answer to a question (not by a
        callee, a task group or a deadline): START records who resumed it."""
        steps = self.steps
        return bool(steps) and _by_user(steps[-1])

    @property
    def carried_trace(self) -> dict[str, Any] | None:
        """The trace context the suspended run left for its resume, if any."""
        return self.trace if isinstance(self.trace, dict) else None


def _by_user(step: TimelineEntry) -> bool:
    return step.status == "RESUMED" and (step.detail or {}).get("by") == "user"


class WorkerInfo(msgspec.Struct, kw_only=True):
    """What a worker's lease says about it.

    ``version``, ``token`` and ``last_seen`` are the by-framework lease fields (its
    clients count a worker online when ``last_seen`` > 0); the rest is Byway's.
    """

    worker_id: str = ""
    version: int = 1
    token: str = ""
    last_seen: int = 0
    agent_types: list[str] = msgspec.field(default_factory=list)
    hostname: str = ""
    pid: int = 0
    started_at: int = 0
    heartbeat_at: int = 0
    lease_ms: int = 0
    max_concurrency: int = 0
    running: int = 0
    #: the holding process beyond host and pid (Linux): boot id, pid namespace, start
    #: time in clock ticks, so that a restarted worker can tell its dead predecessor
    boot_id: str = ""
    pid_ns: str = ""
    proc_start: int = 0

    def process(self) -> ProcessIdentity:
        return ProcessIdentity(self.hostname, self.pid, self.boot_id, self.pid_ns, self.proc_start)


_record_decoder = msgspec.json.Decoder(ExecutionRecord)
_worker_decoder = msgspec.json.Decoder(WorkerInfo)
_encoder = msgspec.json.Encoder()

#: written by the scripts only: a fresh record is encoded without them
_SCRIPT_FIELDS = ("stream_name", "redis_message_id", "result")
#: the identity a run takes from its command's header when its record lacks it
_HEADER_FIELDS = ("parent_message_id", "task_group_id", "source_agent_type")


class _Identity(msgspec.Struct):
    """Which of :data:`_HEADER_FIELDS` a record holds (UNSET: absent)."""

    parent_message_id: str | UnsetType = UNSET
    task_group_id: str | UnsetType = UNSET
    source_agent_type: str | UnsetType = UNSET


_identity_decoder = msgspec.json.Decoder(_Identity)


def decode_record(raw: bytes | str) -> ExecutionRecord:
    """An execution record as Redis holds it (written by Python or Lua)."""
    return _record_decoder.decode(raw)


def started_record(raw: bytes, header: MessageHeader) -> ExecutionRecord:
    """The record START returned for a run of the command with ``header``.

    A run keeps the identity of the ask that started it (a resume's header names its
    sender), except where the record lacks a field: a record another SDK created may
    have no ``task_group_id`` (by-framework's has none), and the header's counts then.
    A record with a field of the wrong type (``null`` for a string, say) still gives the
    run its identity (:func:`_loose_record`), and so does one with bytes that are not
    UTF-8; one that is not JSON at all raises :class:`msgspec.DecodeError`."""
    try:
        record = _record_decoder.decode(raw)
    except (msgspec.ValidationError, UnicodeDecodeError):
        return _loose_record(raw, header)
    if any(getattr(header, f) and not getattr(record, f) for f in _HEADER_FIELDS):
        present = _identity_decoder.decode(raw)  # rare: an empty field, a header that is not
        for name in _HEADER_FIELDS:
            if getattr(present, name) is UNSET:
                setattr(record, name, getattr(header, name))
    return record


def _loose_record(raw: bytes, header: MessageHeader) -> ExecutionRecord:
    """The identity of a record that holds a field of the wrong type, each field read as
    text (a missing one from ``header``), everything else at its default: a resumed
    root still ends as a root, whoever wrote its record."""
    data = msgspec.json.decode(raw.decode("utf-8", "replace"))
    fields: dict[str, Any] = data if isinstance(data, dict) else {}

    def text(name: str, default: str = "") -> str:
        value = fields.get(name, default)
        return "" if value is None else str(value)

    try:
        depth = int(fields.get("depth") or 0)
    except (TypeError, ValueError):
        depth = 0
    return ExecutionRecord(
        execution_id=text("execution_id"),
        message_id=text("message_id", header.message_id),
        session_id=text("session_id", header.session_id),
        trace_id=text("trace_id", header.trace_id),
        status=text("status"),
        target_agent_type=text("target_agent_type", header.target_agent_type),
        source_agent_type=text("source_agent_type", header.source_agent_type),
        parent_message_id=text("parent_message_id", header.parent_message_id),
        task_group_id=text("task_group_id", header.task_group_id),
        user_code=text("user_code") or header.user_code,
        depth=depth,
    )


def decode_worker(worker_id: str, raw: bytes) -> WorkerInfo:
    """A lease as Byway reads it; a by-framework worker's lease lacks most fields."""
    try:
        info = _worker_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        info = WorkerInfo()  # a legacy non-JSON lease still means "online"
    info.worker_id = info.worker_id or worker_id
    return info


def new_record(
    *,
    execution_id: str,
    message_id: str,
    session_id: str,
    trace_id: str,
    status: str,
    target_agent_type: str,
    source_agent_type: str = "",
    parent_message_id: str = "",
    task_group_id: str = "",
    user_code: str = "",
    depth: int = 0,
    now: int | None = None,
) -> bytes:
    """The JSON of a fresh execution record whose timeline starts at ``status``.

    It carries the fields a record is born with, and none the scripts add later
    (``stream_name``, ``redis_message_id``, ``result``, and every UNSET one), nor an
    empty ``detail`` on its first step: the scripts read what is there as it is."""
    ts = now_ms() if now is None else now
    record = ExecutionRecord(
        execution_id=execution_id,
        message_id=message_id,
        session_id=session_id,
        trace_id=trace_id,
        status=status,
        target_agent_type=target_agent_type,
        source_agent_type=source_agent_type,
        parent_message_id=parent_message_id,
        task_group_id=task_group_id,
        user_code=user_code,
        depth=depth,
        created_at=ts,
        updated_at=ts,
        timeline=[TimelineEntry(status=status, timestamp=ts)],
    )
    fields = msgspec.to_builtins(record)
    for name in _SCRIPT_FIELDS:
        del fields[name]
    for step in fields["timeline"]:
        if step["detail"] is None:
            del step["detail"]
    return _encoder.encode(fields)
