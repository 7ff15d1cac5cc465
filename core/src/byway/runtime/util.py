"""Small text helpers shared by the runtime's modules."""

from __future__ import annotations

__all__ = ["cut", "text"]


def text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"
