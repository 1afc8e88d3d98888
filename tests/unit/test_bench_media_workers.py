"""The rules of the media-workers benchmark (benchmarks/media_workers.py): what "a size
holds" means and how the step search picks the next number of rooms."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from benchmarks.media_workers import (
    MAX_P99_MS,
    MIN_FPS,
    holds,
    largest_held,
    next_rooms,
    parse_cpus,
    per_second,
)
from benchmarks.sfu import pinned


def test_frames_are_counted_per_whole_second_of_the_window() -> None:
    arrivals = [9.9, 10.0, 10.5, 10.99, 11.0, 12.4, 12.99, 13.0, 13.5]
    assert per_second(arrivals, 10.0, 13.5) == [3, 1, 2]  # 13.0 on: a partial second
    assert per_second([], 0.0, 2.0) == [0, 0]


def test_a_size_holds_only_when_everyone_gets_frames_on_time() -> None:
    assert holds([30.0, MIN_FPS], MAX_P99_MS, 2).held
    slow = holds([30.0, MIN_FPS - 1], 20.0, 2)
    assert not slow.held and "1 of 2 below" in slow.why
    assert not holds([30.0, 30.0], MAX_P99_MS + 1, 2).held
    assert not holds([30.0], 20.0, 2).held  # a participant never reported
    assert not holds([30.0, 30.0], None, 2).held  # no frame could be timed


def test_the_search_doubles_then_halves_the_gap() -> None:
    assert next_rooms({}, start=4) == 4
    assert next_rooms({4: True}, start=4) == 8
    assert next_rooms({4: True, 8: True, 16: True, 32: False}) == 24
    assert next_rooms({4: True, 8: True, 16: True, 32: False, 24: True}) == 28
    # within a tenth (at least 2 rooms) of the largest held size: done
    assert next_rooms({16: True, 24: True, 28: True, 32: False, 30: False}) is None
    assert next_rooms({4: False}) == 2
    assert next_rooms({4: False, 2: False}) == 1
    assert next_rooms({4: False, 2: False, 1: False}) is None
    assert next_rooms({64: True, 128: True}, most=128) is None
    assert next_rooms({100: True}, most=128) == 128


def test_the_largest_held_size_is_below_the_first_failure() -> None:
    assert largest_held({4: True, 8: True, 16: False, 12: True}) == 12
    assert largest_held({4: True, 8: False, 12: True}) == 4  # a later hold above a failure
    assert largest_held({4: False}) == 0
    assert largest_held({4: True, 8: True}) == 8


def test_cpu_sets_are_read_as_taskset_reads_them_and_unknown_cpus_are_refused() -> None:
    last = (os.cpu_count() or 1) - 1
    assert parse_cpus("0") == {0}
    assert parse_cpus(f"0-{last}") == set(range(last + 1))
    assert parse_cpus(f"0,{last}") == {0, last}
    with pytest.raises(argparse.ArgumentTypeError, match="no such CPU"):
        parse_cpus(f"0-{last + 1}")
    with pytest.raises(ValueError):
        parse_cpus("two")


def test_a_pinned_child_runs_only_on_its_cpus() -> None:
    """What `--server-cpus`/`--load-cpus` give the server and the load processes."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=pinned({0}),
    )
    assert child.stdout.strip() == "[0]"
    assert pinned(None) is None
