"""A LangGraph planner for the redaction tests: a ReAct agent with a prompt template
(its variable is the user's request), a local tool and a Byway agent tool (an ADK agent
in another worker process, :mod:`tests.tracing.marked_adk`), on a scripted model that
reports token usage.

What the user says reaches the rendered prompt, both tools' arguments and the graph's
state; what the tools and models answer starts with :data:`ANSWER`, so a test can tell
inputs and outputs apart wherever they land. Nothing here quotes the user in an answer.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda

#: what every answer (of a tool, the ADK agent, the planner) carries
ANSWER = "ANSWER-MARK-5q8v"


def find_flights(query: str) -> str:
    """Find flights for ``query``."""
    return f"{ANSWER} three flights"


class PlannerScript(BaseChatModel):
    """Calls ``find_flights`` with the user's request, then ``booker`` with it, then
    answers from the booker's reply."""

    model_name: str = "scripted-planner"

    @property
    def _llm_type(self) -> str:
        return "planner-script"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        request = next(str(m.content) for m in messages if isinstance(m, HumanMessage))
        done = [m for m in messages if isinstance(m, ToolMessage)]
        if len(done) < 2:
            tool, arg = [("find_flights", "query"), ("booker", "request")][len(done)]
            reply = AIMessage(
                content="",
                tool_calls=[{"name": tool, "args": {arg: request}, "id": f"call-{len(done)}"}],
            )
        else:
            reply = AIMessage(content=f"{ANSWER} planned: {done[-1].content}")
        reply.usage_metadata = {
            "input_tokens": 11 * len(messages),
            "output_tokens": 5,
            "total_tokens": 11 * len(messages) + 5,
        }
        reply.response_metadata = {"model_name": self.model_name}
        return ChatResult(
            generations=[ChatGeneration(message=reply)],
            llm_output={"model_name": self.model_name},
        )


def _planner() -> Any:
    from byway_langgraph import agent_tool
    from langgraph.prebuilt import create_react_agent

    template = ChatPromptTemplate.from_messages(
        [("system", "Plan a trip for this request: {request}"), MessagesPlaceholder("messages")]
    )
    variables = RunnableLambda(
        lambda state: {"request": state["messages"][0].content, "messages": state["messages"]}
    )
    return create_react_agent(
        PlannerScript(),
        [find_flights, agent_tool("booker", name="booker")],
        prompt=variables | template,
    )


#: the planner graph (``byway worker tests.tracing.marked:planner_graph``)
planner_graph = _planner()
