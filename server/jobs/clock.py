"""The time jobs are due by: the wall clock in service, a clock a test moves by hand."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]  # seconds since the epoch, UTC


def system_clock() -> float:
    return time.time()


class ManualClock:
    """A clock that stands still until told to move (tests; several nodes may share one)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
