"""A subscriber's loss read from its receiver reports (server/media/reported_loss.py):
reports a few packets apart, as Chrome sends one with each NACK, make one reading over
at least MIN_PACKETS, weighted by the packets each covered."""

from __future__ import annotations

import pytest

from server.media.reported_loss import MIN_PACKETS, ReportedLoss


def test_reports_a_few_packets_apart_read_as_their_weighted_loss() -> None:
    # What the cap test saw: 0, 0.5, 0, 0.75 … from reports 20 ms apart.
    loss = ReportedLoss()
    assert not loss.add(0.0, 1000)  # the first only says where the stream is
    readings = [loss.add(f, h) for f, h in [(0.0, 1004), (0.5, 1010), (0.0, 1014), (0.75, 1022)]]
    assert readings == [False, False, False, True]  # 22 packets: one reading
    assert loss.value == pytest.approx((0.5 * 6 + 0.75 * 8) / 22)
    # the next reading starts over: 20 clean packets bring it to 0
    assert not loss.add(0.0, 1032)
    assert loss.add(0.0, 1042) and loss.value == 0.0


def test_fewer_than_min_packets_change_nothing() -> None:
    loss = ReportedLoss()
    loss.add(0.0, 5)
    assert not loss.add(1.0, 5 + MIN_PACKETS - 1)
    assert loss.value == 0.0
    assert loss.add(0.0, 5 + MIN_PACKETS) and loss.value == pytest.approx(
        (MIN_PACKETS - 1) / MIN_PACKETS
    )


def test_repeated_and_reordered_reports_count_nothing_twice() -> None:
    loss = ReportedLoss()
    loss.add(0.0, 100)
    assert not loss.add(0.5, 110)
    assert not loss.add(0.5, 110)  # the same report again
    assert not loss.add(0.9, 105)  # an older one, late
    assert loss.add(0.5, 120)  # 20 packets at 0.5, once each
    assert loss.value == pytest.approx(0.5)


def test_a_restarted_stream_starts_a_new_reading_and_bad_fractions_are_clamped() -> None:
    loss = ReportedLoss()
    loss.add(0.0, 10)
    loss.add(1.0, 25)
    assert not loss.add(1.0, 900_000)  # a jump of more than 2^15: not packets expected
    assert loss.value == 0.0
    assert loss.add(7.0, 900_000 + MIN_PACKETS) and loss.value == 1.0
    assert loss.add(-1.0, 900_000 + 2 * MIN_PACKETS) and loss.value == 0.0
