from __future__ import annotations

import pytest

from byway import RedisSettings
from tests.examples import run_demo

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


def test_the_adk_support_agent_looks_up_asks_for_confirmation_and_refunds(
    settings: RedisSettings,
) -> None:
    out = run_demo(settings, "examples.adk_agent.demo")
    assert '"name": "lookup_order", "args": {"order_id": "A1002"}' in out
    assert (
        "asks (" in out
        and 'Approve issue_refund({"order_id": "A1002", "amount": 89.5})? (yes/no)' in out
    )
    assert (
        "Done: $89.50 for the boots of order A1002 is on its way back to you "
        "(reference RF-1002)." in out
    )
    assert "QUEUED → RUNNING → WAITING_USER → RESUMED → COMPLETED" in out


def test_the_mixed_tree_supervisor_waits_for_the_specialist_that_asks_the_user(
    settings: RedisSettings,
) -> None:
    out = run_demo(settings, "examples.mixed_tree.demo")
    assert "] asks (" in out and "Which dates work for Lisbon?" in out
    assert (
        "All set: the specialist booked Lisbon for May 3-5, 2 nights at Casa Azul "
        "(ref BK-0222)." in out
    )
    assert "QUEUED → RUNNING → WAITING_AGENT → RESUMED → COMPLETED" in out
