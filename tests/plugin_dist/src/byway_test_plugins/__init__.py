"""Test-only plugins, discovered through the ``byway.plugins`` entry points.

- ``sample``: counts hook calls into a Redis hash (BYWAY_TEST_SAMPLE_PLUGIN=<redis url>)
- ``broken``: fails to construct (BYWAY_TEST_BROKEN_PLUGIN=1)
- ``prompts``: registers an AgentConfig whose system prompt is a file's text
  (BYWAY_TEST_PROMPT_FILE=<path>); a hot reload reads the file again
- ``spans``: a trace-provider plugin: an OpenTelemetry SDK provider with the in-memory
  exporter, whose spans are written to BYWAY_TEST_SPAN_DIR/<pid>.json at shutdown
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from byway import AgentConfig, Plugin, PluginBuildContext, PluginDeclined, PluginManifest


class SamplePlugin(Plugin):
    manifest = PluginManifest("sample", version="1.0", priority=50)

    def __init__(self) -> None:
        url = os.environ.get("BYWAY_TEST_SAMPLE_PLUGIN")
        if not url:
            raise PluginDeclined("BYWAY_TEST_SAMPLE_PLUGIN is not set")
        import redis

        self.redis = redis.Redis.from_url(url)
        self.key = os.environ.get("BYWAY_TEST_SAMPLE_KEY", "byway-test-sample")

    async def on_task_start(self, ctx: Any) -> None:
        self.redis.hincrby(self.key, "on_task_start", 1)

    async def on_task_complete(self, ctx: Any, result: Any) -> None:
        self.redis.hincrby(self.key, "on_task_complete", 1)


class BrokenPlugin(Plugin):
    manifest = PluginManifest("broken")

    def __init__(self) -> None:
        if not os.environ.get("BYWAY_TEST_BROKEN_PLUGIN"):
            raise PluginDeclined("BYWAY_TEST_BROKEN_PLUGIN is not set")
        raise RuntimeError("this plugin is broken on purpose")


class PromptFilePlugin(Plugin):
    manifest = PluginManifest("prompts", version="1.0")

    def __init__(self) -> None:
        path = os.environ.get("BYWAY_TEST_PROMPT_FILE")
        if not path:
            raise PluginDeclined("BYWAY_TEST_PROMPT_FILE is not set")
        self.path = Path(path)

    async def setup(self, ctx: PluginBuildContext) -> None:
        text = self.path.read_text().strip()
        if text == "broken":
            raise ValueError("the prompt file says it is broken")
        for agent_type in ctx.agent_types:
            ctx.add_agent_config(
                AgentConfig(agent_id=agent_type, prompts={"system": text}, tools=["search"])
            )


class SpanFilePlugin(Plugin):
    manifest = PluginManifest("spans", version="1.0", priority=10)

    def __init__(self) -> None:
        directory = os.environ.get("BYWAY_TEST_SPAN_DIR")
        if not directory:
            raise PluginDeclined("BYWAY_TEST_SPAN_DIR is not set")
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.directory = Path(directory)
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    async def setup(self, ctx: PluginBuildContext) -> None:
        ctx.set_tracer_provider(self.provider)

    async def on_worker_shutdown(self, info: Any) -> None:
        spans = [
            {
                "name": s.name,
                "trace_id": f"{s.context.trace_id:032x}",
                "span_id": f"{s.context.span_id:016x}",
                "parent_id": f"{s.parent.span_id:016x}" if s.parent else "",
                "attributes": dict(s.attributes or {}),
            }
            for s in self.exporter.get_finished_spans()
        ]
        (self.directory / f"{os.getpid()}.json").write_text(json.dumps(spans))


class Shouter:
    """Not a GatewayWorker: an object of a 'framework' only the adapter below knows."""

    def __init__(self, name: str) -> None:
        self.name = name

    def answer(self, text: str) -> str:
        return text.upper()


SHOUTER = Shouter("shouter")


def adapt_shouter(obj: object, agent_types: list[str] | None) -> Any:
    """The ``byway.adapters`` entry point: a worker for a Shouter, None for anything else."""
    if not isinstance(obj, Shouter):
        return None
    from byway.worker import FunctionWorker

    async def handle(command: Any, context: Any) -> str:
        return obj.answer(str(command.content))

    return FunctionWorker(handle, agent_types or [obj.name])
