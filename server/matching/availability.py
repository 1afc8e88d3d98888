"""Weekly availability in UTC, computed from local windows over concrete calendar weeks.

Local windows ("Mon 09:00-12:00" in America/New_York) do not map to one fixed UTC
time: the offset changes with daylight saving, and on different dates in different
zones (the US moves in the second week of March, Europe in the last). So shared time
is computed over real weeks: each window is placed on its actual date in each week
of the program's `Calendar`, converted to UTC with zoneinfo, and marked on a grid of
quarter hours. Shared weekly hours are the average over those weeks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from server.matching.profiles import Profile, Window

SLOT_MINUTES = 15
SLOTS_PER_DAY = 24 * 60 // SLOT_MINUTES
SLOTS_PER_WEEK = 7 * SLOTS_PER_DAY
SLOT_HOURS = SLOT_MINUTES / 60


@dataclass(frozen=True)
class Calendar:
    """The weeks shared hours are computed over: `weeks` weeks from the Monday `start`."""

    start: date
    weeks: int = 1

    def __post_init__(self) -> None:
        if self.start.weekday() != 0:
            raise ValueError(f"the calendar starts on a Monday; {self.start} is not one")
        if not 1 <= self.weeks <= 52:
            raise ValueError("the calendar covers 1 to 52 weeks")

    def week_start(self, week: int) -> date:
        return self.start + timedelta(days=7 * week)


def week_mask(timezone: str, windows: Sequence[Window], calendar: Calendar) -> np.ndarray:
    """Quarter hours (in UTC, from each week's Monday 00:00 UTC) when a person is free:
    a bool array of `calendar.weeks * SLOTS_PER_WEEK`."""
    return _week_mask(timezone, tuple(windows), calendar).copy()


@lru_cache(maxsize=4096)
def _week_mask(timezone: str, windows: tuple[Window, ...], calendar: Calendar) -> np.ndarray:
    mask = np.zeros(calendar.weeks * SLOTS_PER_WEEK, dtype=bool)
    for window in windows:
        mask |= _window_mask(timezone, window, calendar)
    mask.flags.writeable = False
    return mask


@lru_cache(maxsize=65536)
def _window_mask(timezone: str, window: Window, calendar: Calendar) -> np.ndarray:
    """One window's quarter hours. Cached apart: people mostly differ in how they
    combine a few thousand distinct (zone, window) pairs, not in the pairs."""
    zone = ZoneInfo(timezone)
    mask = np.zeros(calendar.weeks * SLOTS_PER_WEEK, dtype=bool)
    for week in range(calendar.weeks):
        monday = calendar.week_start(week)
        utc_origin = datetime.combine(monday, time(), UTC)
        block = mask[week * SLOTS_PER_WEEK : (week + 1) * SLOTS_PER_WEEK]
        local_midnight = datetime.combine(monday + timedelta(days=window.day), time(), zone)
        # Wall-clock arithmetic, then the offset in force at that wall time.
        start = (local_midnight + timedelta(minutes=window.start)).astimezone(UTC)
        end = (local_midnight + timedelta(minutes=window.end)).astimezone(UTC)
        first = _slot(start - utc_origin)
        last = _slot(end - utc_origin)
        # A weekly window that falls off either end of the UTC week wraps around.
        block[np.arange(first, last) % SLOTS_PER_WEEK] = True
    mask.flags.writeable = False
    return mask


def _slot(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60) // SLOT_MINUTES


def availability_matrix(profiles: Sequence[Profile], calendar: Calendar) -> np.ndarray:
    """One row per profile, float32 0/1, so shared slots of all pairs are one matrix product."""
    out = np.zeros((len(profiles), calendar.weeks * SLOTS_PER_WEEK), dtype=np.float32)
    for row, profile in enumerate(profiles):
        out[row] = _week_mask(profile.timezone, profile.availability, calendar)
    return out


def shared_hours(a: Profile, b: Profile, calendar: Calendar) -> float:
    """Average hours per week both are free."""
    both = _week_mask(a.timezone, a.availability, calendar) & _week_mask(
        b.timezone, b.availability, calendar
    )
    return float(both.sum()) * SLOT_HOURS / calendar.weeks


def utc_offset_hours(timezone: str, calendar: Calendar) -> float:
    """The zone's offset at noon on the calendar's first Monday."""
    moment = datetime.combine(calendar.start, time(12), ZoneInfo(timezone))
    offset = moment.utcoffset()
    assert offset is not None
    return offset.total_seconds() / 3600


def clock_gap(offsets_a: np.ndarray, offsets_b: np.ndarray) -> np.ndarray:
    """Hours between two clocks, the short way round (UTC+12 and UTC-11 are 1 hour apart)."""
    gap = np.abs(offsets_a - offsets_b) % 24
    return np.minimum(gap, 24 - gap)
