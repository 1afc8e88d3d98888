"""The cap on a single-layer publisher, as a pure function (microseconds each)."""

from __future__ import annotations

import pytest

from server.media.publisher_cap import (
    FLOOR,
    STALE_SECONDS,
    Cap,
    Take,
    decide,
    worth_sending,
)

SENDING = 1_500_000.0


def fine(now: float, budget: float | None = 5_000_000) -> Take:
    return Take(budget, now, False, 0.0)


def test_no_cap_while_every_subscriber_can_take_it() -> None:
    cap = Cap()
    assert decide(cap, [fine(0.0), fine(0.0, budget=None)], SENDING, 0.0) is None
    assert decide(cap, [], SENDING, 1.0) is None
    assert cap.demand == SENDING


def test_a_rising_estimate_below_the_rate_is_no_limit() -> None:
    # a receive-side estimate ramps up from below at the start of a call
    assert decide(Cap(), [Take(600_000, 0.0, True, 0.0)], SENDING, 0.0) is None


def test_the_least_subscriber_caps_it_and_the_floor_bounds_it() -> None:
    cap = Cap()
    takes = [fine(0.0), Take(800_000, 0.0, False, 0.0), Take(1_000_000, 0.0, False, 0.0)]
    assert decide(cap, takes, SENDING, 0.0) == 800_000
    assert decide(Cap(), [Take(80_000, 0.0, False, 0.0)], SENDING, 0.0) == FLOOR


def test_loss_caps_it_by_half_the_loss_and_compounds_only_once_a_second() -> None:
    cap = Cap()
    assert decide(cap, [Take(None, 0.0, False, 0.2)], SENDING, 0.0) == pytest.approx(1_350_000)
    # the same loss report, seen again with a REMB 0.2 s later: held
    assert decide(cap, [Take(None, 0.2, False, 0.2)], 1_350_000, 0.2) == pytest.approx(1_350_000)
    assert decide(cap, [Take(None, 1.1, False, 0.2)], 1_350_000, 1.1) == pytest.approx(1_215_000)
    # loss between 2 % and 10 % holds the cap where it is, even with a higher estimate
    assert decide(cap, [Take(3_000_000, 2.0, True, 0.05)], 1_215_000, 2.0) == pytest.approx(
        1_215_000
    )


def test_the_cap_follows_a_recovering_estimate_up_and_lifts_above_the_demand() -> None:
    cap = Cap()
    assert decide(cap, [Take(300_000, 0.0, False, 0.0)], SENDING, 0.0) == 300_000
    # capped, the estimate climbs with what it receives: the cap follows it
    assert decide(cap, [Take(450_000, 1.0, True, 0.0)], 300_000, 1.0) == 450_000
    assert decide(cap, [Take(1_500_000, 2.0, True, 0.0)], 450_000, 2.0) == 1_500_000
    assert cap.demand == SENDING  # what it sent before the cap, not what the cap allows
    # 1.2x what it sent before the cap: lifted
    assert decide(cap, [Take(1_800_000, 3.0, True, 0.0)], 1_500_000, 3.0) is None
    assert cap.value is None and cap.changed_at == 3.0


def test_it_never_lifts_while_one_subscriber_is_still_short() -> None:
    cap = Cap()
    decide(cap, [Take(400_000, 0.0, False, 0.0), fine(0.0)], SENDING, 0.0)
    assert decide(cap, [Take(500_000, 1.0, False, 0.0), fine(1.0)], 400_000, 1.0) == 500_000
    assert decide(cap, [fine(2.0), Take(5e6, 2.0, False, 0.03)], 500_000, 2.0) == 500_000


def test_a_subscriber_gone_quiet_or_gone_limits_nothing() -> None:
    cap = Cap()
    decide(cap, [Take(200_000, 0.0, False, 0.0)], SENDING, 0.0)
    assert cap.value == 200_000
    assert decide(cap, [Take(200_000, 0.0, False, 0.0)], 200_000, STALE_SECONDS + 0.1) is None
    cap = Cap()
    decide(cap, [Take(200_000, 0.0, False, 0.0)], SENDING, 0.0)
    assert decide(cap, [], 200_000, 1.0) is None


def test_only_a_real_change_is_sent() -> None:
    assert not worth_sending(None, None)
    assert worth_sending(150_000, None) and worth_sending(None, 150_000)
    assert not worth_sending(155_000, 150_000)
    assert worth_sending(170_000, 150_000)
