"""Which span attributes carry content, and whose: the rules behind hidden inputs and
outputs (:mod:`byway.telemetry` applies them at export).

A key is matched by pattern over its dotted segments, indexes included
(``llm.output_messages.0.message.tool_calls.1.tool_call.function.arguments``), never by
exact name only. Each rule gives the key a *side*:

- ``IN``: what went into a step: the user's and system messages, prompt templates,
  tool arguments (wherever they sit, also inside a model's output messages);
- ``OUT``: what a step made: completions, tool results, answers;
- ``BOTH``: a value that carries both, hidden with either: a chain's, graph's or node's
  state (its messages are the user's and the models'), a conversation handed to a model
  and a template's variables and rendered prompt (earlier answers and tool results are
  in them), a model's raw response (its tool calls' arguments are in it), a resume's
  content (the user's reply or a callee's answer);
- ``ERROR``: exception messages and stack traces (they quote what a step was given or
  made), hidden with either.

``input.*`` / ``output.*`` (and Langfuse's ``langfuse.observation.input`` / ``output``)
take their side from the span's kind (``openinference.span.kind`` or
``langfuse.observation.type``), and the messages of ``llm.input_messages.N.*`` /
``gen_ai.prompt.N.*`` from their role (a user's or system message is an input, an
assistant's or a tool's an output). Within content, structure stays: roles, MIME types,
finish reasons, tool-call ids and function names. Token counts, model names, session and
user ids, span names and statuses are no content and always stay.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from enum import IntFlag
from typing import Any

__all__ = ["Side", "hidden", "kind_of", "side_of"]


class Side(IntFlag):
    NONE = 0
    IN = 1
    OUT = 2
    BOTH = IN | OUT
    ERROR = 4


#: placeholders of rules whose side depends on the span: its kind, or a message's role
_VALUE_IN, _VALUE_OUT, _MESSAGE = "value-in", "value-out", "message"

#: (pattern over the key with its indexes written ``#``, side), first match wins
_RULES: tuple[tuple[re.Pattern[str], Side | str], ...] = tuple(
    (re.compile(pattern), side)
    for pattern, side in (
        # errors
        (r"^exception\.(message|stacktrace)$", Side.ERROR),
        (r"^langfuse\.observation\.status_message$", Side.ERROR),
        # tool-call arguments, wherever they sit (an output message's tool calls included)
        (r"(^|\.)(arguments|args|tool_call_args|parameters|function_call)(\.|$)", Side.IN),
        # the generic values, by the span's kind
        (r"^input(\.|$)", _VALUE_IN),
        (r"^output(\.|$)", _VALUE_OUT),
        (r"^langfuse\.observation\.input$", _VALUE_IN),
        (r"^langfuse\.observation\.output$", _VALUE_OUT),
        (r"^langfuse\.trace\.input$", Side.IN),
        (r"^langfuse\.trace\.output$", Side.OUT),
        # messages to a model, by role; what a model answered
        (r"^llm\.input_messages\.#\.", _MESSAGE),
        (r"^gen_ai\.prompt\.#\.", _MESSAGE),
        (r"^(llm\.input_messages|gen_ai\.prompt)(\.|$)", Side.BOTH),
        (r"^(llm\.output_messages|llm\.choices|gen_ai\.completion)(\.|$)", Side.OUT),
        # prompts: templates, their variables, rendered prompts
        # (a template's variables and a rendered prompt hold the conversation it renders)
        (r"^llm\.(prompts|prompt_template\.variables)(\.|$)", Side.BOTH),
        (r"^llm\.(prompt_template|invocation_parameters)(\.|$)", Side.IN),
        (r"^gen_ai\.system_instructions(\.|$)", Side.IN),
        # OpenTelemetry GenAI's and ADK's JSON documents (a conversation, a response)
        (r"^gen_ai\.(input|output)\.messages(\.|$)", Side.BOTH),
        (r"^gen_ai\.tool\.call\.result(\.|$)", Side.OUT),
        (r"^gcp\.vertex\.agent\.(llm_request|llm_response|data)(\.|$)", Side.BOTH),
        (r"^gcp\.vertex\.agent\.tool_response(\.|$)", Side.OUT),
        # retrieval, reranking, embedding
        (r"^(reranker\.(query|input_documents)|embedding\.(text|embeddings))(\.|$)", Side.IN),
        (r"^(retrieval\.documents|reranker\.output_documents)(\.|$)", Side.OUT),
        # any other framework's message text
        (r"(^|\.)(content|contents|text|messages|prompt_text|completion_text)$", Side.BOTH),
    )
)
#: the structure of content, kept with it
_STRUCTURE = re.compile(
    r"\.(role|mime_type|finish_reason|tool_call\.id|tool_call_id|function\.name)$"
)
_INDEX = re.compile(r"(?<=\.)\d+(?=\.|$)")
_ITEM = re.compile(r"^(?:llm\.input_messages|gen_ai\.prompt)\.\d+\.")
_ROLE = re.compile(r"^(llm\.input_messages|gen_ai\.prompt)\.(\d+)\.(?:message\.)?role$")
_INPUT_ROLES = frozenset({"user", "human", "system", "developer"})

#: the side of ``input.*`` and ``output.*`` by span kind; a kind not named carries state
#: both ways (BOTH): a chain, graph or node (LangGraph's ``agent`` node is an AGENT span
#: whose output is the state update, tool calls included), a prompt template (its
#: variables and rendered prompt hold the conversation), an unknown kind
_VALUE_SIDES: Mapping[str, tuple[Side, Side]] = {
    "TOOL": (Side.IN, Side.OUT),  # arguments and result
    "LLM": (Side.BOTH, Side.BOTH),  # a conversation; a response with tool calls
    "GENERATION": (Side.BOTH, Side.BOTH),  # Langfuse's name for LLM spans
    "EMBEDDING": (Side.IN, Side.IN),
    "RETRIEVER": (Side.IN, Side.OUT),
    "RERANKER": (Side.IN, Side.OUT),
    "EVALUATOR": (Side.BOTH, Side.OUT),
    "GUARDRAIL": (Side.BOTH, Side.OUT),
}
#: the attributes of a GenAI content event that are no content
_GEN_AI_EVENT_KEPT = frozenset({"gen_ai.system", "gen_ai.provider.name", "event.name", "index"})
#: Byway's own spans (scope ``byway``), by the first word of their name: a task's request
#: and answer; a resume's content is the user's reply or a callee's answer
_BYWAY_SIDES: Mapping[str, tuple[Side, Side]] = {
    "byway.task": (Side.IN, Side.OUT),
    "byway.resume": (Side.BOTH, Side.OUT),
}


def kind_of(attributes: Mapping[str, Any]) -> str:
    """A span's kind, upper case (OpenInference's, else Langfuse's); ``""`` for none."""
    kind = attributes.get("openinference.span.kind") or attributes.get("langfuse.observation.type")
    return kind.upper() if isinstance(kind, str) else ""


def _roles(attributes: Mapping[str, Any]) -> dict[str, str]:
    """The role of each message of a model's input, by its key prefix (``...N.``)."""
    roles = {}
    for key, value in attributes.items():
        match = _ROLE.match(key)
        if match is not None and isinstance(value, str):
            roles[f"{match[1]}.{match[2]}."] = value.lower()
    return roles


def side_of(
    key: str,
    *,
    kind: str = "",
    span_name: str = "",
    byway: bool = False,
    roles: Mapping[str, str] | None = None,
) -> Side:
    """Whose content ``key`` carries (:class:`Side`; ``NONE`` for none) on a span of
    ``kind`` named ``span_name`` (``byway``: one of Byway's own); ``roles``: the message
    roles of the span (by prefix)."""
    rule = _rule(_INDEX.sub("#", key))
    if isinstance(rule, Side):
        return rule
    if rule == _MESSAGE:
        item = _ITEM.match(key)
        role = (roles or {}).get(item[0]) if item is not None else None
        if role is None:
            return Side.BOTH
        return Side.IN if role in _INPUT_ROLES else Side.OUT
    sides = _VALUE_SIDES.get(kind, (Side.BOTH, Side.BOTH))
    if byway:
        sides = _BYWAY_SIDES.get(span_name.partition(" ")[0], sides)
    return sides[0] if rule == _VALUE_IN else sides[1]


@functools.lru_cache(maxsize=4096)
def _rule(shape: str) -> Side | str:
    """The first rule ``shape`` (a key, its indexes written ``#``) matches: a side, or
    the placeholder of a side that depends on the span."""
    for pattern, side in _RULES:
        if pattern.search(shape) is None:
            continue
        if side is not Side.ERROR and _STRUCTURE.search(shape):
            return Side.NONE
        return side
    return Side.NONE


def hidden(
    attributes: Mapping[str, Any] | None,
    *,
    inputs: bool,
    outputs: bool,
    span_name: str = "",
    scope: str = "",
    event_name: str = "",
    kind: str | None = None,
) -> list[str]:
    """The keys of ``attributes`` to keep from export when ``inputs`` and/or ``outputs``
    are hidden (error texts go with either), on the span ``span_name`` of instrumentation
    scope ``scope``. For an event's attributes, ``event_name``
    and ``kind`` (its span's kind; else read from ``attributes``): a GenAI content
    event (``gen_ai.*``) keeps only its structure and the system's name."""
    if not attributes or not (inputs or outputs):
        return []
    drop = Side.ERROR | (Side.IN if inputs else Side.NONE) | (Side.OUT if outputs else Side.NONE)
    if event_name.startswith("gen_ai."):
        return [
            key
            for key in attributes
            if not _STRUCTURE.search("." + key) and key not in _GEN_AI_EVENT_KEPT
        ]
    span_kind = kind_of(attributes) if kind is None else kind
    roles = _roles(attributes)
    byway = scope == "byway"
    return [
        key
        for key in attributes
        if side_of(key, kind=span_kind, span_name=span_name, byway=byway, roles=roles) & drop
    ]
