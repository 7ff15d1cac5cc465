"""Serve a LangGraph graph as a Byway worker."""

from byway_langgraph.checkpoint import RedisCheckpointSaver

__all__ = ["RedisCheckpointSaver"]
