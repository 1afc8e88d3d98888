"""The PIN guard's bounds, as pure decisions (no clock needed: nothing refills in a test)."""

from server.media.phone.guessing import PinGuard


def test_a_source_is_locked_after_its_failures_and_others_are_not() -> None:
    guard = PinGuard(per_source=3, window_seconds=600, global_per_minute=100)

    assert [guard.failed("192.0.2.1") for _ in range(3)] == [False, False, True]

    assert guard.refuses("192.0.2.1")
    assert not guard.refuses("192.0.2.2")


def test_over_the_global_ceiling_one_failure_locks_a_source_and_clean_ones_still_call() -> None:
    guard = PinGuard(per_source=10, window_seconds=600, global_per_minute=2)
    guard.failed("192.0.2.1")
    guard.failed("192.0.2.2")  # the ceiling: two failures a minute from everyone
    assert guard.over_global_ceiling
    assert not guard.refuses("192.0.2.1")  # under their own limit, failures so far

    assert guard.failed("192.0.2.3")  # one more, from anywhere, locks that source at once

    assert guard.refuses("192.0.2.3")
    assert not guard.refuses("198.51.100.7")  # a source that never failed is not affected
