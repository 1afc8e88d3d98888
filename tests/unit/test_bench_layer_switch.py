"""The switch and freeze detection of benchmarks.layer_switch, on made-up frame series."""

from __future__ import annotations

import pytest

from benchmarks.layer_switch import changes, first_change, height_at, longest_gap, reached

# 720 lines every 0.1 s to 1.0, nothing until 2.5 (a freeze), then 180 lines; 720 again
# from 4.0.
FRAMES = [
    *((round(0.1 * i, 1), 720) for i in range(11)),
    *((round(2.5 + 0.1 * i, 1), 180) for i in range(15)),
    *((round(4.0 + 0.1 * i, 1), 720) for i in range(5)),
]


def test_the_first_frame_of_another_height_after_the_event_is_the_switch() -> None:
    assert height_at(FRAMES, 0.55) == 720
    assert first_change(FRAMES, 0.55) == 2.5
    assert first_change(FRAMES, 0.55, until=2.0) is None
    assert reached(FRAMES, 0.55, 180) == 2.5
    assert reached(FRAMES, 2.6, 720) == 4.0
    assert reached(FRAMES, 2.6, 720, until=3.9) is None


def test_changes_lists_each_new_height_once() -> None:
    assert changes(FRAMES, 0.5, 10.0) == [(2.0, 180), (3.5, 720)]
    assert changes(FRAMES, 4.05, 10.0) == []


def test_the_freeze_is_the_longest_time_without_a_frame_in_the_window() -> None:
    times = [t for t, _ in FRAMES]
    assert longest_gap(times, 0.55, 3.0) == pytest.approx(1.5)  # 1.0 → 2.5
    assert longest_gap(times, 0.0, 0.95) == pytest.approx(0.1)
    # nothing after the last frame up to the window's end counts as frozen too
    assert longest_gap(times, 4.0, 6.4) == pytest.approx(2.0)
