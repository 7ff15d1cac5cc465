"""Serve a Google ADK agent as a Byway worker: ``AdkWorker(root_agent, agent_type=...)``,
or ``byway worker myapp.agent:root_agent`` (the adapter entry point). Sessions live in
Redis (:class:`RedisSessionService`), so every worker continues every session."""

from byway_adk.sessions import RedisSessionService
from byway_adk.tools import agent_tool, execution_id, idempotency_key
from byway_adk.worker import AdkWorker

__all__ = ["AdkWorker", "RedisSessionService", "agent_tool", "execution_id", "idempotency_key"]
