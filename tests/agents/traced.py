"""The call tree the tracing tests trace: a LangGraph supervisor (a ReAct agent whose
model reports token usage) calls an ADK specialist in another worker process, which asks
the user before it answers (``tests.agents.adk_agents.specialist_agent``)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from tests.agents.graphs import ReactScript


class CountedReactScript(ReactScript):
    """:class:`ReactScript` whose replies report token usage (and a model name)."""

    model_name: str = "scripted-react"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        result = super()._generate(messages, stop, run_manager, **kwargs)
        message = result.generations[0].message
        message.usage_metadata = {  # type: ignore[attr-defined]
            "input_tokens": 7 * len(messages),
            "output_tokens": 3,
            "total_tokens": 7 * len(messages) + 3,
        }
        message.response_metadata = {"model_name": self.model_name}
        result.llm_output = {"model_name": self.model_name}
        return result


def _supervisor() -> Any:
    from byway_langgraph import agent_tool
    from langgraph.prebuilt import create_react_agent

    return create_react_agent(
        CountedReactScript(tool="specialist", prefix="supervisor: "),
        [agent_tool("adk-specialist", name="specialist")],
    )


#: a LangGraph supervisor whose tool is the ADK specialist
supervisor_graph = _supervisor()
