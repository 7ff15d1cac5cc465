"""The ``data`` object of each kind of event Byway writes (documented in docs/protocol.md).

Every ``data`` carries a ``kind`` discriminator:

=============  ======================  ==============================================
kind           event_type              fields
=============  ======================  ==============================================
chunk          answerDelta (root) /    ``content``, ``role``, optional ``function_call``,
               reasoningLogDelta       ``function_response``, ``tool_calls``,
               (tasks other agents     ``tool_responses``, ``metadata``
               started)
state          stepComplete            ``state``, ``metadata``
artifact       stepComplete            ``url``, ``metadata``
ask_user       taskStop                ``prompt``, ``schema``, ``metadata``
final          finalAnswer (root) /    ``status``, ``content``, ``reply_data``,
               reasoningLogDelta
                                       ``execution_id``, ``error`` (``type``, ``message``)
end            appStreamResponse       ``status``, ``execution_id``
=============  ======================  ==============================================

A worker also writes ``answer_refused`` (``stepComplete``: ``message_id``, ``status``,
``waiting``, ``reason``) for a user's answer no task took; :mod:`byway.answers` builds it.
"""

from __future__ import annotations

from typing import Any

from byway.protocol import (
    AgentTaskResult,
    ArtifactEvent,
    AskUserEvent,
    StateChangeEvent,
    StreamChunkEvent,
)

__all__ = [
    "artifact_data",
    "ask_user_data",
    "chunk_data",
    "end_data",
    "final_data",
    "state_data",
]


def chunk_data(chunk: StreamChunkEvent | str) -> dict[str, Any]:
    if isinstance(chunk, str):
        return {"kind": "chunk", "content": chunk, "role": "assistant"}
    data: dict[str, Any] = {"kind": "chunk", "content": chunk.content, "role": chunk.role}
    for name in ("function_call", "function_response", "tool_calls", "tool_responses"):
        value = getattr(chunk, name)
        if value is not None:
            data[name] = value
    if chunk.metadata:
        data["metadata"] = chunk.metadata
    return data


def state_data(state: StateChangeEvent | str) -> dict[str, Any]:
    if isinstance(state, str):
        return {"kind": "state", "state": state, "metadata": {}}
    return {"kind": "state", "state": state.state, "metadata": state.metadata}


def artifact_data(artifact: ArtifactEvent | str) -> dict[str, Any]:
    if isinstance(artifact, str):
        return {"kind": "artifact", "url": artifact, "metadata": {}}
    return {"kind": "artifact", "url": artifact.url, "metadata": artifact.metadata}


def ask_user_data(question: AskUserEvent) -> dict[str, Any]:
    return {
        "kind": "ask_user",
        "prompt": question.prompt,
        "schema": question.schema,
        "metadata": question.metadata,
    }


def final_data(
    result: AgentTaskResult, execution_id: str, error: dict[str, str] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": "final",
        "status": result.status,
        "content": result.content,
        "reply_data": result.reply_data,
        "execution_id": execution_id,
    }
    if error:
        data["error"] = error
    return data


def end_data(status: str, execution_id: str) -> dict[str, Any]:
    return {"kind": "end", "status": status, "execution_id": execution_id}
