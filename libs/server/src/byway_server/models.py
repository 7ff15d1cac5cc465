"""The native API's request and response bodies (what the OpenAPI at ``/docs`` shows).

Requests refuse fields they do not know (a misspelt ``agnet_type`` is a 422 naming it,
not a silently ignored key).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, PlainValidator, WithJsonSchema

from byway.registry import ExecutionRecord

__all__ = [
    "CallNode",
    "CancelRequest",
    "CancelResponse",
    "ErrorBody",
    "Execution",
    "ExecutionsResponse",
    "ResumeRequest",
    "ResumeResponse",
    "SendRequest",
    "SendResponse",
    "TimelineStep",
    "execution_of",
]


def _content(value: Any) -> str | list[dict[str, Any]]:
    """Text or a list of objects; one error at ``content`` otherwise (a plain union would
    report one per member, at ``content.str`` and ``content.list[...]``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    raise ValueError(f"expected text or a list of message objects, got {type(value).__name__}")


Content = Annotated[
    str | list[dict[str, Any]],
    PlainValidator(_content),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}),
]


class ErrorBody(BaseModel):
    """Every error: what was wrong, and the field it is about when there is one."""

    model_config = ConfigDict(extra="allow")

    error: str
    #: the HTTP status
    status: int
    field: str = ""
    #: the same text as ``error`` (what langgraph-sdk shows)
    detail: str = ""
    #: a refusal's code: AGENT_TYPE_UNAVAILABLE, SESSION_BUSY, ...
    code: str = ""


class SendRequest(BaseModel):
    """A message to an agent type."""

    model_config = ConfigDict(extra="forbid")

    agent_type: str = Field(
        description="the agent type that runs the message", min_length=1, max_length=256
    )
    content: Content = Field(
        description="text, or a list of message objects (e.g. [{'role': 'user', ...}])"
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="carried on the command (its 'tenant' key is the server's)"
    )
    message_id: str | None = Field(
        default=None,
        description="your own id for it (sending one twice runs it once); default: a new one",
        min_length=1,
        max_length=256,
    )
    multitask_strategy: Literal["enqueue", "reject", "interrupt"] | None = Field(
        default=None,
        description="while the session runs another message: queue this one (enqueue), "
        "refuse it (reject: 409), or cancel the running one (interrupt); default: the "
        "agent type's, else enqueue",
    )
    require_online_worker: bool = Field(
        default=True,
        description="refuse (503) unless a worker of the agent type is online; false "
        "queues it for a worker that starts later",
    )


class SendResponse(BaseModel):
    session_id: str
    message_id: str
    execution_id: str = ""
    #: QUEUED: written for a worker
    status: str
    #: sent, queued (waits behind the session's running message), interrupt, duplicate
    disposition: str = ""
    queued_behind: str = ""
    #: the session's events until this message's end (relative to the server's URL)
    events_url: str
    #: lets a browser's EventSource (which cannot send headers) read this session
    stream_token: str


class ResumeResponse(BaseModel):
    session_id: str
    message_id: str
    #: QUEUED: the answer is written for a worker of the message's agent type
    status: str
    #: the session's events until the message's end (relative to the server's URL)
    events_url: str
    stream_token: str


class ResumeRequest(BaseModel):
    """The answer to the question a message waits on."""

    model_config = ConfigDict(extra="forbid")

    answer: JsonValue = Field(
        description="text, or any JSON value (an object is the reply_data the agent reads)"
    )
    reply_data: JsonValue = Field(default=None, description="structured data beside a text answer")


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["graceful", "force"] = Field(
        default="graceful",
        description="graceful: the task stops at its next check, then after the worker's "
        "grace period; force: at once",
    )
    reason: str = Field(default="", max_length=1000)


class CancelResponse(BaseModel):
    session_id: str
    #: the message cancelled ('' for a whole session)
    message_id: str = ""
    #: CANCEL_REQUESTED (it reached a task that had not ended) or ALREADY_FINISHED
    status: str
    #: the tasks reached, breadth-first from the one named
    message_ids: list[str]


class TimelineStep(BaseModel):
    status: str
    timestamp: int
    worker_id: str = ""
    detail: dict[str, Any] | None = None


class Execution(BaseModel):
    """One execution (one run of a message), as its session's registry records it."""

    execution_id: str
    message_id: str
    session_id: str
    trace_id: str = ""
    #: QUEUED, RUNNING, WAITING_USER, WAITING_AGENT, COMPLETED, FAILED, CANCELLED
    status: str
    agent_type: str
    source_agent_type: str = ""
    parent_message_id: str = ""
    task_group_id: str = ""
    #: who sent it: the tenant, for what this server sent
    user_code: str = ""
    depth: int = 0
    worker_id: str = ""
    attempts: int = 0
    cancel_requested: bool = False
    cancel_reason: str = ""
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    updated_at: int = 0
    timeline: list[TimelineStep] = []
    #: the end: status, and error and usage when there are
    result: dict[str, Any] | None = None


class CallNode(BaseModel):
    """A message and the messages it started (by ``parent_message_id``)."""

    message_id: str
    execution_id: str
    agent_type: str
    status: str
    children: list[CallNode] = []


class ExecutionsResponse(BaseModel):
    session_id: str
    #: oldest first
    executions: list[Execution]
    #: the call tree: the messages nothing in the session started, and below each what
    #: it started
    tree: list[CallNode]


def execution_of(record: ExecutionRecord) -> Execution:
    return Execution(
        execution_id=record.execution_id,
        message_id=record.message_id,
        session_id=record.session_id,
        trace_id=record.trace_id,
        status=record.status,
        agent_type=record.target_agent_type,
        source_agent_type=record.source_agent_type,
        parent_message_id=record.parent_message_id,
        task_group_id=record.task_group_id,
        user_code=record.user_code,
        depth=record.depth,
        worker_id=record.worker_id,
        attempts=record.attempts,
        cancel_requested=record.cancel_requested,
        cancel_reason=record.cancel_reason,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        updated_at=record.updated_at,
        timeline=[
            TimelineStep(
                status=s.status, timestamp=s.timestamp, worker_id=s.worker_id, detail=s.detail
            )
            for s in record.steps
        ],
        result=record.result,
    )
