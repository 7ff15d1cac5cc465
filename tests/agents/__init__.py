"""Agents the tests run in worker processes (importable as ``tests.agents``)."""
