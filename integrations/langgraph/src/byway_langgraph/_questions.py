"""Interrupt values as questions a person can read, and word answers to review requests.

An ``interrupt(value)`` reaches the user as an ``ask_user`` event. Its ``prompt`` must be
text, not a Python repr of the value: a ``{"question": ...}`` is its question; LangChain's
``HumanInTheLoopMiddleware`` requests (batched: ``action_requests`` + ``review_configs``;
per call: ``type="tool_approval"``) list each tool call with its arguments as JSON and the
decisions allowed, and say in ``expects`` which JSON answer resumes them; anything else is
shown as JSON. The structured value stays in the event's metadata.

A review request answered in words (``--follow``, a plain ``byway resume``) is read as a
decision: JSON text as that JSON, "approve"/"yes" as approving every call, "reject"/"no"
as rejecting every call. Other text goes to the graph as given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "Question",
    "prompt_of_all",
    "question",
    "review_answer",
    "review_size",
    "schema_json",
]

#: the shape of each decision type, as shown in ``expects`` (``edit`` is built per tool)
_DECISIONS = {
    "approve": '{"type": "approve"}',
    "reject": '{"type": "reject", "message": "..."}',
    "respond": '{"type": "respond", "message": "..."}',
}
_ALL_DECISIONS = ("approve", "edit", "reject", "respond")
_YES = frozenset({"approve", "approved", "yes", "y", "ok", "okay"})
_NO = frozenset({"reject", "rejected", "no", "n", "deny"})
#: keys whose text is the question itself
_QUESTION_KEYS = ("question", "prompt", "message")

Question = dict[str, Any]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _is_batched_review(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("action_requests"), list)
        and isinstance(value.get("review_configs"), list)
    )


def _is_call_review(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("type") == "tool_approval"


def review_size(value: Any) -> int | None:
    """How many decisions a review request takes: the number of actions of a batched
    request, 0 for a per-call request (one decision, not a list); None if not a review."""
    if _is_batched_review(value):
        return len(value["action_requests"])
    return 0 if _is_call_review(value) else None


def _description(action: Mapping[str, Any]) -> str:
    """The action's description, its arguments as JSON. The middleware's default text
    ends with ``Args: <Python repr>``; that tail is shown as JSON instead."""
    name, args = str(action.get("name", "?")), action.get("args") or {}
    text = str(action.get("description") or "")
    repr_tail = f"Args: {args}"
    if not text:
        return f"Tool: {name}\nArgs: {_json(args)}"
    if text.endswith(repr_tail):
        return text[: -len(repr_tail)] + f"Args: {_json(args)}"
    return text


def _decision_shape(kind: str, action: Mapping[str, Any]) -> str:
    if kind == "edit":
        edited = {"name": action.get("name"), "args": action.get("args") or {}}
        return '{"type": "edit", "edited_action": ' + _json(edited) + "}"
    return _DECISIONS.get(kind, _json({"type": kind}))


def _allowed(configs: Sequence[Any], name: str) -> list[str]:
    for config in configs:
        if isinstance(config, Mapping) and config.get("action_name") == name:
            return [str(d) for d in config.get("allowed_decisions") or []]
    return list(_ALL_DECISIONS)


def _schema_decisions(schema: Any) -> list[str]:
    """The decision types a per-call request's JSON schema allows (``type`` constants)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            kind = (node.get("properties") or {}).get("type")
            if isinstance(kind, Mapping):
                for value in [kind.get("const"), *(kind.get("enum") or [])]:
                    if isinstance(value, str) and value not in found:
                        found.append(value)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(schema)
    return [d for d in _ALL_DECISIONS if d in found] or list(_ALL_DECISIONS)


def schema_json(schema: Any) -> Any:
    """An interrupt's ``response_schema`` as JSON schema (LangGraph may hold the Python
    type it was given); None if there is none or it cannot be rendered."""
    if schema is None or isinstance(schema, Mapping):
        return schema
    try:
        from pydantic import TypeAdapter

        return TypeAdapter(schema).json_schema()
    except Exception:  # a type pydantic cannot describe: the prompt lists every decision
        return None


def _batched(value: Mapping[str, Any]) -> tuple[str, str]:
    actions = [a for a in value["action_requests"] if isinstance(a, Mapping)]
    configs = value["review_configs"]
    parts, answers = [], []
    for number, action in enumerate(actions, 1):
        allowed = _allowed(configs, str(action.get("name")))
        text = f"{_description(action)}\nDecisions: {', '.join(allowed)}"
        parts.append(f"{number}. {text}" if len(actions) > 1 else text)
        answers.append(" | ".join(_decision_shape(kind, action) for kind in allowed))
    return "\n\n".join(parts), '{"decisions": [' + ", ".join(answers) + "]}"


def _per_call(value: Mapping[str, Any], schema: Any) -> tuple[str, str]:
    allowed = _schema_decisions(schema) if schema else list(_ALL_DECISIONS)
    text = f"{_description(value)}\nDecisions: {', '.join(allowed)}"
    return text, " | ".join(_decision_shape(kind, value) for kind in allowed)


def question(interrupt_id: str, value: Any, schema: Any = None) -> Question:
    """One open question: ``{id, value, prompt}``, plus ``expects`` (the answer's JSON
    shape) for a question whose shape is known."""
    entry: Question = {"id": interrupt_id, "value": value}
    if _is_batched_review(value):
        entry["prompt"], entry["expects"] = _batched(value)
    elif _is_call_review(value):
        entry["prompt"], entry["expects"] = _per_call(value, schema)
    elif isinstance(value, str):
        entry["prompt"] = value
    elif isinstance(value, Mapping) and any(isinstance(value.get(k), str) for k in _QUESTION_KEYS):
        entry["prompt"] = next(value[k] for k in _QUESTION_KEYS if isinstance(value.get(k), str))
    else:
        entry["prompt"] = json.dumps(value, ensure_ascii=False, indent=2, default=str)
    return entry


def prompt_of_all(questions: Sequence[Question]) -> str:
    """The event's prompt: the one question, or each prefixed by its interrupt id."""
    if len(questions) == 1:
        return str(questions[0]["prompt"])
    return "\n\n".join(f"[{q['id']}] {q['prompt']}" for q in questions)


def review_answer(answer: Any, size: int) -> Any:
    """A text answer to a review request (``size`` decisions, 0 for a per-call one) as the
    decision(s) it means; anything else unchanged."""
    if not isinstance(answer, str):
        return answer
    text = answer.strip()
    if text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            return answer
    word = text.lower().rstrip(".!")
    if word in _YES:
        decision: dict[str, Any] = {"type": "approve"}
    elif word in _NO:
        decision = {"type": "reject"}
    else:
        return answer
    return decision if size == 0 else {"decisions": [dict(decision) for _ in range(size)]}
