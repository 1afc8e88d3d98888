"""benchmarks.receive_cost's per-layer rates from two getStats snapshots."""

from __future__ import annotations

import threading
import time

import psutil
import pytest

from benchmarks.receive_cost import _wakeups, layer_rates, settled


def test_layer_rates_come_from_counter_differences_over_the_stats_timestamps() -> None:
    first = {
        "q": {"t": 1000.0, "bytes": 0, "packets": 0, "frames": 0, "height": 180},
        "f": {"t": 1000.0, "bytes": 1_000, "packets": 10, "frames": 5, "height": 720},
    }
    last = {
        "q": {"t": 3000.0, "bytes": 37_500, "packets": 60, "frames": 60, "height": 180},
        "f": {"t": 3000.0, "bytes": 376_000, "packets": 410, "frames": 65, "height": 720},
        "h": {"t": 3000.0, "bytes": 9, "packets": 1, "frames": 1, "height": 360},
    }
    rates = layer_rates(first, last)
    assert set(rates) == {"q", "f"}  # h has no first snapshot
    assert rates["q"].kbps == pytest.approx(150.0)
    assert rates["q"].fps == pytest.approx(30.0)
    assert rates["f"].kbps == pytest.approx(1500.0)
    assert rates["f"].packets_per_s == pytest.approx(200.0)
    assert rates["f"].height == 720


def test_a_rate_has_settled_when_its_last_samples_stay_within_ten_percent() -> None:
    assert not settled([100.0, 100.0])
    assert not settled([300.0, 600.0, 1200.0])
    assert settled([300.0, 1900.0, 2000.0, 2100.0])
    assert not settled([0.0, 0.0, 0.0])


def test_wake_ups_are_counted_in_every_thread_not_only_the_main_one() -> None:
    process = psutil.Process()
    napped, done = threading.Event(), threading.Event()

    def nap() -> None:
        for _ in range(50):
            time.sleep(0.001)  # each nap sleeps this thread and wakes it: the thing counted
        napped.set()
        done.wait()  # alive while counted: a thread's count goes with it when it ends

    before = _wakeups(process)
    napper = threading.Thread(target=nap)
    napper.start()
    napped.wait()  # the main thread sleeps once here
    try:
        assert _wakeups(process) - before >= 50
    finally:
        done.set()
        napper.join()
