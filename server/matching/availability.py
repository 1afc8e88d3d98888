"""When people are free, in real time: local weekly windows read on each person's clock.

A person is free at an instant when their own clock then shows a time inside one of their
weekly windows ("Mon 09:00-12:00" in America/New_York). That is the whole rule; daylight
saving follows from it: each instant is converted with zoneinfo, so an offset change is
counted where it happens, a window past midnight ("Sun 23:00-02:00") simply continues on
the next local day whatever the offsets, and the night clocks go back a window can cover
the repeated hour twice (it is real time on the clock the person reads).

Time is a grid of quarter hours (every zone's offset in use is a whole number of quarter
hours). Each zone maps the grid's quarter hours to quarters of the local week once, so a
person's free quarters are one lookup into their 672-quarter local week.

Shared weekly hours are counted over the calendar's real span, `weeks` weeks from its
first Monday 00:00 UTC, and averaged. An earlier version placed each window on a date
and wrapped it into a UTC week; a window crossing Sunday midnight then took Monday's
offset from the wrong week, so a week with a clock change lost or gained an hour.
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
_SAMPLE = 24  # quarters between offset samples: offsets never change twice in 6 hours
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday


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

    @property
    def origin(self) -> datetime:
        """The calendar's first instant: its first Monday 00:00 UTC."""
        return datetime.combine(self.start, time(), UTC)

    @property
    def quarters(self) -> int:
        return self.weeks * SLOTS_PER_WEEK


def week_pattern(windows: Sequence[Window]) -> np.ndarray:
    """The quarters of a local week (0 = Monday 00:00) inside the windows."""
    return _pattern(tuple(windows))


@lru_cache(maxsize=65536)
def _pattern(windows: tuple[Window, ...]) -> np.ndarray:
    pattern = np.zeros(SLOTS_PER_WEEK, dtype=bool)
    for w in windows:
        day = w.day * SLOTS_PER_DAY
        pattern[day + w.start // SLOT_MINUTES : day + w.end // SLOT_MINUTES] = True
    pattern.flags.writeable = False
    return pattern


def utc_offsets(timezone: str, origin: datetime, quarters: int) -> np.ndarray:
    """The zone's UTC offset in minutes during each quarter hour from `origin`."""
    return _offsets(timezone, origin, quarters)


@lru_cache(maxsize=1024)
def _offsets(timezone: str, origin: datetime, quarters: int) -> np.ndarray:
    zone = ZoneInfo(timezone)
    step = timedelta(minutes=SLOT_MINUTES)

    def at(q: int) -> int:
        offset = (origin + q * step).astimezone(zone).utcoffset()
        assert offset is not None
        return int(offset.total_seconds() // 60)

    # Sample every 6 hours; look at every quarter only between samples that differ.
    samples = sorted({*range(0, quarters, _SAMPLE), quarters - 1})
    known = {q: at(q) for q in samples}
    out = np.empty(quarters, dtype=np.int32)
    for a, b in zip(samples, samples[1:], strict=False):
        out[a:b] = known[a] if known[a] == known[b] else [at(q) for q in range(a, b)]
    out[samples[-1]] = known[samples[-1]]
    out.flags.writeable = False
    return out


@lru_cache(maxsize=1024)
def _local_quarters(timezone: str, origin: datetime, quarters: int) -> np.ndarray:
    """For each quarter hour from `origin`, the quarter of the local week the zone's
    clock then shows (0 = Monday 00:00)."""
    utc_minutes = int(origin.timestamp()) // 60 + SLOT_MINUTES * np.arange(quarters)
    local = (utc_minutes + _offsets(timezone, origin, quarters)) // SLOT_MINUTES
    out = ((local + _EPOCH_WEEKDAY * SLOTS_PER_DAY) % SLOTS_PER_WEEK).astype(np.intp)
    out.flags.writeable = False
    return out


def free_quarters(
    timezone: str, windows: Sequence[Window], origin: datetime, quarters: int
) -> np.ndarray:
    """Whether the person is free in each quarter hour from `origin` (a quarter-hour
    instant): a bool array of `quarters`."""
    return _pattern(tuple(windows))[_local_quarters(timezone, origin, quarters)]


def week_mask(timezone: str, windows: Sequence[Window], calendar: Calendar) -> np.ndarray:
    """The person's free quarter hours over the calendar, from its first Monday 00:00 UTC."""
    return free_quarters(timezone, windows, calendar.origin, calendar.quarters)


def availability_matrix(profiles: Sequence[Profile], calendar: Calendar) -> np.ndarray:
    """One row per profile, float32 0/1, so shared slots of all pairs are one matrix product."""
    out = np.zeros((len(profiles), calendar.quarters), dtype=np.float32)
    for row, profile in enumerate(profiles):
        out[row] = week_mask(profile.timezone, profile.availability, calendar)
    return out


def shared_hours(a: Profile, b: Profile, calendar: Calendar) -> float:
    """Average hours per week both are free."""
    both = week_mask(a.timezone, a.availability, calendar) & week_mask(
        b.timezone, b.availability, calendar
    )
    return float(both.sum()) * SLOT_HOURS / calendar.weeks


def widest_gaps(timezones: Sequence[str], calendar: Calendar) -> np.ndarray:
    """Hours between each two zones' clocks at the moment they are furthest apart in the
    calendar (the short way round): New York and Sydney are 15 h apart in the first
    days of April 2025 and 14 h after, so a limit holds only if it holds all along."""
    if not timezones:
        return np.zeros((0, 0))
    offsets = np.stack([_offsets(z, calendar.origin, calendar.quarters) for z in timezones])
    moments = np.unique(offsets, axis=1) / 60  # the distinct sets of offsets in force
    return clock_gap(moments[:, None, :], moments[None, :, :]).max(axis=2)


def clock_gap(offsets_a: np.ndarray, offsets_b: np.ndarray) -> np.ndarray:
    """Hours between two clocks, the short way round (UTC+12 and UTC-11 are 1 hour apart)."""
    gap = np.abs(offsets_a - offsets_b) % 24
    return np.minimum(gap, 24 - gap)
