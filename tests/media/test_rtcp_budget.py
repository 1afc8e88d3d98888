"""A connection's RTCP budget (aiortc_internals/rtcp.py's `FeedbackBudget`): datagrams
and bytes a second, NACKed numbers a second, on a clock held still and then moved. The
same budget on a real connection, flooded: tests/security/sfu/test_sfu_abuse_feedback.py."""

from __future__ import annotations

import pytest

from server.jobs.clock import ManualClock
from server.media.aiortc_internals.rtcp import (
    RTCP_BYTES_BURST,
    RTCP_BYTES_PER_SECOND,
    RTCP_DATAGRAMS_BURST,
    RTCP_DATAGRAMS_PER_SECOND,
    FeedbackBudget,
)
from server.signaling import ratelimit
from server.signaling.ratelimit import TokenBucket


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    clock = ManualClock(0.0)
    monkeypatch.setattr(ratelimit, "clock", clock)
    return clock


def test_datagrams_past_the_burst_are_dropped_until_the_clock_moves(clock: ManualClock) -> None:
    budget = FeedbackBudget()
    admitted = [budget.admit(12) for _ in range(RTCP_DATAGRAMS_BURST + 5)]
    assert admitted.count(True) == RTCP_DATAGRAMS_BURST and not any(admitted[-5:])
    assert budget.datagrams_dropped == 5
    clock.advance(10 / RTCP_DATAGRAMS_PER_SECOND)  # ten datagrams' worth
    assert [budget.admit(12) for _ in range(11)] == [True] * 10 + [False]


def test_bytes_past_the_burst_are_dropped_even_in_few_datagrams(clock: ManualClock) -> None:
    budget = FeedbackBudget()
    quarter = RTCP_BYTES_BURST // 4
    assert [budget.admit(quarter) for _ in range(5)] == [True] * 4 + [False]
    assert not budget.admit(12)  # no byte left: not even a PLI
    assert budget.datagrams_dropped == 2
    assert budget.datagrams.seconds_until(RTCP_DATAGRAMS_BURST - 4) == 0  # none spent on them
    clock.advance(quarter / RTCP_BYTES_PER_SECOND)
    assert budget.admit(quarter) and not budget.admit(12)


def test_take_up_to_takes_what_there_is(clock: ManualClock) -> None:
    bucket = TokenBucket(rate=100, burst=50)
    assert bucket.take_up_to(30) == 30
    assert bucket.take_up_to(30) == 20
    assert bucket.take_up_to(30) == 0
    clock.advance(0.055)  # 5.5 tokens: whole ones only
    assert bucket.take_up_to(30) == 5
    clock.advance(10.0)
    assert bucket.take_up_to(80) == 50  # never more than the burst
