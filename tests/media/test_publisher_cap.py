"""The cap on a single-layer publisher, as a pure function (microseconds each)."""

from __future__ import annotations

import pytest

from server.media.publisher_cap import (
    FLOOR,
    SETTLE_SECONDS,
    STALE_SECONDS,
    Cap,
    Take,
    decide,
    worth_sending,
)

SENDING = 1_500_000.0


def take(now: float, budget: float | None, loss: float = 0.0, who: str = "bo") -> Take:
    """A settled (not rising) estimate that came at `now`."""
    return Take(who, budget, now, False, loss)


def fine(now: float, who: str = "carol") -> Take:
    return take(now, 5_000_000, who=who)


def capped(budget: float, others: list[Take] | None = None) -> Cap:
    """A cap started by `budget` held for the settling time."""
    cap = Cap()
    decide(cap, [take(0.0, budget), *(others or [])], SENDING, 0.0)
    decide(cap, [take(SETTLE_SECONDS, budget), *(others or [])], SENDING, SETTLE_SECONDS)
    assert cap.value is not None
    return cap


def test_no_cap_while_every_subscriber_can_take_it() -> None:
    cap = Cap()
    assert decide(cap, [fine(0.0), take(0.0, None, who="dan")], SENDING, 0.0) is None
    assert decide(cap, [], SENDING, 1.0) is None
    assert cap.demand == SENDING


def test_a_rising_estimate_below_the_rate_is_no_limit() -> None:
    # a receive-side estimate ramps up from below at the start of a call
    cap = Cap()
    for t in range(10):
        assert decide(cap, [Take("bo", 600_000, t, True, 0.0)], SENDING, float(t)) is None


def test_one_low_report_is_no_limit_but_a_settled_one_is() -> None:
    cap = Cap()
    assert decide(cap, [take(0.0, 800_000)], SENDING, 0.0) is None
    assert decide(cap, [take(1.0, 2_000_000)], SENDING, 1.0) is None  # it was a dip
    assert decide(cap, [take(1.5, 800_000)], SENDING, 1.5) is None
    assert decide(cap, [take(3.0, 800_000)], SENDING, 3.0) is None  # 1.5 s low so far
    assert decide(cap, [take(3.5, 800_000)], SENDING, 3.5) == 800_000


def test_the_least_subscriber_caps_it_and_the_floor_bounds_it() -> None:
    cap = Cap()
    takes = [fine(0.0), take(0.0, 800_000), take(0.0, 1_000_000, who="dan")]
    decide(cap, takes, SENDING, 0.0)
    takes = [fine(2.0), take(2.0, 800_000), take(2.0, 1_000_000, who="dan")]
    assert decide(cap, takes, SENDING, 2.0) == 800_000
    assert capped(80_000).value == FLOOR


def test_loss_caps_it_at_once_by_half_the_loss_and_compounds_only_once_a_second() -> None:
    cap = Cap()
    assert decide(cap, [take(0.0, None, 0.2)], SENDING, 0.0) == pytest.approx(1_350_000)
    # the same loss report, seen again with a REMB 0.2 s later: held
    assert decide(cap, [take(0.2, None, 0.2)], 1_350_000, 0.2) == pytest.approx(1_350_000)
    assert decide(cap, [take(1.1, None, 0.2)], 1_350_000, 1.1) == pytest.approx(1_215_000)
    # loss between 2 % and 10 % holds the cap where it is, even with a higher estimate
    held = Take("bo", 3_000_000, 2.0, True, 0.05)
    assert decide(cap, [held], 1_215_000, 2.0) == pytest.approx(1_215_000)


def test_the_cap_follows_a_recovering_estimate_up_and_lifts_above_the_demand() -> None:
    cap = capped(300_000)
    assert cap.value == 300_000
    # capped, the estimate climbs with what it receives: the cap follows it
    assert decide(cap, [Take("bo", 450_000, 3.0, True, 0.0)], 300_000, 3.0) == 450_000
    assert decide(cap, [Take("bo", 1_500_000, 4.0, True, 0.0)], 450_000, 4.0) == 1_500_000
    assert cap.demand == SENDING  # what it sent before the cap, not what the cap allows
    # 1.2x what it sent before the cap: lifted
    assert decide(cap, [Take("bo", 1_800_000, 5.0, True, 0.0)], 1_500_000, 5.0) is None
    assert cap.value is None and cap.changed_at == 5.0


def test_it_never_lifts_while_one_subscriber_is_still_short() -> None:
    cap = capped(400_000, [fine(0.0)])
    assert decide(cap, [take(3.0, 500_000), fine(3.0)], 400_000, 3.0) == 500_000
    assert decide(cap, [fine(4.0, who="bo"), take(4.0, 5e6, 0.03)], 500_000, 4.0) == 500_000


def test_a_subscriber_gone_quiet_or_gone_limits_nothing() -> None:
    cap = capped(200_000)
    late = SETTLE_SECONDS + STALE_SECONDS + 0.1
    assert decide(cap, [take(SETTLE_SECONDS, 200_000)], 200_000, late) is None
    cap = capped(200_000)
    assert decide(cap, [], 200_000, 3.0) is None


def test_only_a_real_change_is_sent() -> None:
    assert not worth_sending(None, None)
    assert worth_sending(150_000, None) and worth_sending(None, 150_000)
    assert not worth_sending(155_000, 150_000)
    assert worth_sending(170_000, 150_000)
