"""Weekly meeting slots a pair can both make, shown in each person's local time.

A slot is a real stretch of time, so its local times are what each person's clock shows
then. The stretches are those that start in the mentee's first calendar week, read on
the mentee's clock (Monday 00:00 to the next Monday 00:00 local): a slot never falls
before the calendar, and in a week with a clock change it is where both are free that
week (an earlier version wrapped a UTC week and was an hour off).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from server.matching.availability import SLOT_MINUTES, SLOTS_PER_DAY, Calendar, free_quarters
from server.matching.profiles import Profile

QUARTER = timedelta(minutes=SLOT_MINUTES)


@dataclass(frozen=True)
class Slot:
    start_utc: datetime
    minutes: int
    mentee_local: str  # "Tue 14:00-15:30 Europe/London"
    mentor_local: str

    def to_json(self) -> dict[str, object]:
        return {
            "start_utc": self.start_utc.isoformat(),
            "minutes": self.minutes,
            "mentee_local": self.mentee_local,
            "mentor_local": self.mentor_local,
        }


def first_week(person: Profile, calendar: Calendar) -> tuple[datetime, datetime]:
    """The calendar's first week on the person's clock, as UTC instants [start, end)."""
    zone = ZoneInfo(person.timezone)
    return tuple(  # type: ignore[return-value]
        datetime.combine(calendar.start + timedelta(days=d), time(), zone).astimezone(UTC)
        for d in (0, 7)
    )


def suggest_slots(
    mentee: Profile, mentor: Profile, calendar: Calendar, count: int = 3
) -> list[Slot]:
    """The `count` longest stretches both are free that start in the mentee's first
    calendar week (earliest first among equals).

    A stretch running past the week's end is followed for up to a day, so Sunday night
    into Monday is one stretch; one running into the week from before it is the previous
    week's (its twin at the end of this week is counted instead), unless it lasts the
    whole week.
    """
    begin, end = first_week(mentee, calendar)
    week = int((end - begin) / QUARTER)
    # One quarter before the week, the week, and a day after it.
    origin, span = begin - QUARTER, week + 1 + SLOTS_PER_DAY
    both = free_quarters(mentee.timezone, mentee.availability, origin, span) & free_quarters(
        mentor.timezone, mentor.availability, origin, span
    )
    runs = [(s, n) for s, n in _runs(both) if 1 <= s <= week]
    if both[0] and both[1]:  # a stretch from before the week: keep it only if it spans it
        tail = next(n for s, n in _runs(both) if s == 0)
        if tail > week:
            runs.append((1, tail - 1))
    slots = []
    for start, length in sorted(runs, key=lambda run: (-run[1], run[0]))[:count]:
        a = origin + start * QUARTER
        b = a + length * QUARTER
        slots.append(Slot(a, length * SLOT_MINUTES, _local(a, b, mentee), _local(a, b, mentor)))
    return slots


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each stretch of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)]


def _local(begin: datetime, end: datetime, person: Profile) -> str:
    zone = ZoneInfo(person.timezone)
    a, b = begin.astimezone(zone), end.astimezone(zone)
    until = f"{b:%H:%M}" if a.date() == b.date() else f"{b:%a %H:%M}"
    return f"{a:%a %H:%M}-{until} {person.timezone}"
