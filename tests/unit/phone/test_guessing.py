"""The PIN guard's bounds, as pure decisions (no clock needed: nothing refills in a test)."""

import pytest

from server.jobs.clock import ManualClock
from server.phone.guessing import PinCheckRefused, PinGuard
from server.phone.refusals import PinRefusals, Refusal
from server.signaling import ratelimit


def refusal(guard: PinGuard, source: str) -> str:
    with pytest.raises(PinCheckRefused) as refused:
        guard.hold(source)
    return refused.value.reason


def test_holds_are_taken_before_checking_so_parallel_checks_never_pass_the_limit() -> None:
    guard = PinGuard(per_source=3, window_seconds=600, global_per_minute=100)

    for _ in range(3):  # three checks in flight at once, none answered yet
        guard.hold("192.0.2.1")

    assert refusal(guard, "192.0.2.1") == "source_locked"
    assert guard.refuses("192.0.2.1")
    assert not guard.refuses("192.0.2.2")


def test_a_right_pin_gives_its_failure_back() -> None:
    guard = PinGuard(per_source=2, window_seconds=600, global_per_minute=2)

    for _ in range(5):
        guard.give_back(guard.hold("192.0.2.1"), proven=True)

    assert not guard.refuses("192.0.2.1")
    guard.hold("192.0.2.9")
    guard.hold("192.0.2.9")  # the global ceiling is all there, too


def test_over_the_global_ceiling_proven_sources_have_their_own_share() -> None:
    guard = PinGuard(per_source=10, window_seconds=600, global_per_minute=8)  # 6 + 2 proven
    guard.give_back(guard.hold("198.51.100.7"), proven=True)  # a trunk that let someone in
    guard.give_back(guard.hold("203.0.113.5"), proven=False)  # a removed person's PIN
    for n in range(6):
        guard.hold(f"192.0.2.{n}")  # the newcomers' share: six failures a minute

    assert [refusal(guard, f"192.0.2.{n}") for n in range(6, 11)] == ["over_ceiling"] * 5
    assert refusal(guard, "203.0.113.5") == "over_ceiling"  # known PIN, never let in
    guard.give_back(guard.hold("198.51.100.7"), proven=True)  # the trunk still gets in


def test_the_ceiling_holds_for_proven_sources_too() -> None:
    """Proving one right PIN from each of many addresses must not add their per-source
    budgets to the ceiling (it used to exempt them from it)."""
    guard = PinGuard(per_source=10, window_seconds=600, global_per_minute=8)
    proven = [f"198.51.100.{n}" for n in range(5)]
    for source in proven:
        guard.give_back(guard.hold(source), proven=True)
    checked = 0
    for source in proven * 3:
        try:
            guard.hold(source)
            checked += 1
        except PinCheckRefused as refused:
            assert refused.reason == "over_ceiling"
    assert checked == 2  # the proven share of 8 a minute, not 5 x 10


def test_below_four_a_minute_everyone_shares_one_bucket() -> None:
    guard = PinGuard(per_source=10, window_seconds=600, global_per_minute=2)
    guard.give_back(guard.hold("198.51.100.7"), proven=True)
    guard.hold("192.0.2.1")
    guard.hold("198.51.100.7")
    assert refusal(guard, "198.51.100.7") == refusal(guard, "192.0.2.2") == "over_ceiling"


def test_the_snapshot_names_blocked_sources_until_they_may_try_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = ManualClock(1000.0)
    monkeypatch.setattr(ratelimit, "clock", clock)
    guard = PinGuard(per_source=2, window_seconds=600, global_per_minute=4)  # 3 + 1 proven
    for source in ("192.0.2.1", "192.0.2.1", "192.0.2.2"):
        guard.hold(source)

    state = guard.snapshot()
    assert state.blocked == (("192.0.2.1", 300.0),)  # one failure back every 300 s
    assert (state.ceiling_engaged, state.ceiling_per_minute) == (True, 4)

    clock.advance(60)  # the ceiling refills a failure in 20 s; the source in 300
    state = guard.snapshot()
    assert (state.blocked, state.ceiling_engaged) == ((("192.0.2.1", 240.0),), False)
    clock.advance(240)
    assert guard.snapshot().blocked == ()


def test_refusals_count_the_last_hour_and_since_start_and_keep_the_last_few() -> None:
    refusals = PinRefusals(keep=2)
    for at, reason in ((0.0, "wrong_pin"), (100.0, "source_locked"), (4000.0, "wrong_pin")):
        refusals.record(Refusal(at, "192.0.2.1", reason, "dtmf", ""))

    counts = refusals.counts(now=4000.0)
    assert counts.last_hour == {"wrong_pin": 1}  # the two before 400 s are over an hour old
    assert counts.since_start == {"wrong_pin": 2, "source_locked": 1}
    assert [r.at for r in counts.recent] == [4000.0, 100.0]  # newest first, two kept
