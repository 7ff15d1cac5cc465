from __future__ import annotations

import pytest

from byway import RedisSettings
from tests.examples import run_demo

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


def test_the_langgraph_demo_streams_tools_and_tokens_and_waits_for_approval(
    settings: RedisSettings,
) -> None:
    out = run_demo(settings, "examples.langgraph_app.demo", "Plan a trip to Porto")
    assert 'tool_calls: [{"name": "get_weather"' in out
    assert "asks (" in out and "Book a trip to Porto? (yes/no)" in out
    assert (
        "The forecast for Porto: sunny and 24°C in Porto all week. "
        "Booked: 3 nights in Porto, confirmation TRV-9595." in out
    )
    assert "QUEUED → RUNNING → WAITING_USER → RESUMED → COMPLETED" in out
