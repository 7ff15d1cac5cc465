"""The ``byway.adapters`` entry point: ``byway worker myapp.agent:root_agent`` serves any
ADK agent (an ``LlmAgent``, a workflow agent) or ``App``."""

from __future__ import annotations

from typing import Any

from byway import ConfigurationError


def adapt(obj: Any, agent_types: list[str] | None) -> Any:
    from google.adk.agents import BaseAgent

    if not isinstance(obj, BaseAgent) and not _is_app(obj):
        return None
    if agent_types and len(agent_types) > 1:
        raise ConfigurationError("--agent-type: an ADK agent serves one agent type")
    from byway_adk.worker import AdkWorker

    return AdkWorker(obj, agent_type=agent_types[0] if agent_types else None)


def _is_app(obj: Any) -> bool:
    try:
        from google.adk.apps import App
    except ImportError:  # pragma: no cover - older google-adk
        return False
    return isinstance(obj, App)
