"""Questions and answers on the command line: the open questions an ``ask_user`` event
carries (each with its id and, when it says, the answer it expects), how typed text
becomes an answer, and the ``byway resume`` command line that answers from elsewhere.

A LangGraph question lists its interrupts in ``metadata.interrupts``
(``[{id, value, prompt?, expects?}]``), an ADK question its open calls in
``metadata.function_calls`` (``[{id, name, kind, args}]``); a core handler's question is
its ``prompt`` (and ``schema``). Several open questions are answered one by one: the
answer is an object keyed by their ids, which both adapters take as "these ones".
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from byway._log import escape_controls

__all__ = [
    "Question",
    "open_questions",
    "parse_answer",
    "parse_value",
    "render_ask",
    "render_questions",
    "resume_hint",
]

#: longest rendering of one question's text or expected shape on a terminal
_SHOWN = 600


@dataclass(frozen=True, slots=True)
class Question:
    """One open question: ``id`` ("" for a handler's single question), what it asks, and
    the answer it expects ("" when it does not say)."""

    id: str
    text: str
    expects: str = ""


def _compact(value: Any) -> str:
    """Text as is (its lines indented, other control characters escaped: it came from
    the wire), anything else as compact JSON; cut for a terminal."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text if len(text) <= _SHOWN else text[:_SHOWN] + "…"
    first, *rest = [escape_controls(line) for line in text.split("\n")]
    return "\n".join([first, *(f"      {line}" if line else "" for line in rest)])


def _interrupt(item: dict[str, Any]) -> Question:
    value = item.get("value")
    prompt = item.get("prompt")
    if not prompt and isinstance(value, dict) and isinstance(value.get("question"), str):
        prompt = value["question"]
    expects = item.get("expects")
    return Question(
        id=str(item.get("id", "")),
        text=_compact(prompt if prompt else value),
        expects="" if expects in (None, "") else _compact(expects),
    )


_ADK_EXPECTS = {
    "confirmation": 'yes or no (or {"confirmed": true|false})',
    "long_running": "the tool's result: text, or a JSON object (its function response)",
    "credential": "the credential, as a JSON object",
}


def _function_call(item: dict[str, Any]) -> Question:
    kind = str(item.get("kind", ""))
    if kind == "confirmation":
        args = item.get("tool_args", item.get("args"))
        text = f"confirm {_compact(str(item.get('tool', item.get('name', '?'))))}({_compact(args)})"
        if item.get("hint"):
            text += f": {_compact(item['hint'])}"
    else:
        text = f"{_compact(str(item.get('name', '?')))}({_compact(item.get('args', {}))})"
    expects = item.get("expects") or _ADK_EXPECTS.get(kind, "")
    return Question(id=str(item.get("id", "")), text=text, expects=_compact(expects))


def open_questions(data: dict[str, Any]) -> list[Question]:
    """The questions an ``ask_user`` event's ``data`` holds, in the order asked."""
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    items = metadata.get("interrupts") if metadata else None
    if isinstance(items, list) and items:
        return [_interrupt(i) for i in items if isinstance(i, dict)]
    calls = metadata.get("function_calls") if metadata else None
    if isinstance(calls, list) and calls:
        return [_function_call(c) for c in calls if isinstance(c, dict)]
    schema = data.get("schema")
    return [Question(id="", text=_compact(data.get("prompt") or ""),
                     expects="" if not schema else _compact(schema))]  # fmt: skip


def render_questions(questions: list[Question]) -> str:
    """Each question on its own lines: number, id, text, expected answer."""
    lines = []
    for n, q in enumerate(questions, 1):
        head = f"  [{n}]" + (f" id={escape_controls(q.id)}" if q.id else "")
        lines.append(f"{head}: {q.text}")
        if q.expects:
            lines.append(f"      expects: {q.expects}")
    return "\n".join(lines)


def parse_answer(text: str) -> Any:
    """What a line typed at the prompt answers: a JSON object or array is sent as that
    structure; a JSON string in double quotes as its text (the way to send text that
    would parse, such as ``"[draft]"``); anything else as the text typed."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"'):
        try:
            value = json.loads(stripped)
        except ValueError:
            return text
        if isinstance(value, (dict, list, str)):
            return value
    return text


def parse_value(text: str) -> Any:
    """``--interrupt ID=VALUE``'s VALUE: JSON when it parses (``true``, ``3``,
    ``{"type": "approve"}``, ``"quoted text"``), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def resume_hint(session_id: str, message_id: str, questions: list[Question]) -> str:
    """How to answer from another shell: ``byway resume`` command lines."""
    base = f"byway resume {shlex.quote(session_id)} {shlex.quote(message_id)}"
    lines = [
        f"  {base} 'your answer'",
        f"  {base} --json 'JSON'   (an object, a list, a number...)",
    ]
    ids = [q.id for q in questions if q.id]
    if len(ids) > 1:
        lines.append(
            f"  {base} "
            + " ".join(f"--interrupt {escape_controls(shlex.quote(i))}=VALUE" for i in ids)
        )
    return "\n".join(lines)


def render_ask(who: str, message_id: str, data: dict[str, Any]) -> str:
    """An ``ask_user`` event as ``send --follow`` and ``stream`` show it."""
    questions = open_questions(data)
    head = _compact(data.get("prompt") or "")
    text = f"\n[{who}] asks ({message_id}): {head}\n"
    if len(questions) == 1 and questions[0].text == head:  # one question: not twice
        only = questions[0]
        text += f"      id: {escape_controls(only.id)}\n" if only.id else ""
        return text + (f"      expects: {only.expects}\n" if only.expects else "")
    return text + render_questions(questions) + "\n"
