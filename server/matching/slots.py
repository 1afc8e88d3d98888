"""Weekly meeting slots a pair can both make, shown in each person's local time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from server.matching.availability import SLOT_MINUTES, SLOTS_PER_WEEK, Calendar, week_mask
from server.matching.profiles import Profile


@dataclass(frozen=True)
class Slot:
    start_utc: datetime  # in the calendar's first week
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


def suggest_slots(
    mentee: Profile, mentor: Profile, calendar: Calendar, count: int = 3
) -> list[Slot]:
    """The `count` longest stretches both are free in the calendar's first week (earliest
    first among equals). If the calendar crosses a daylight-saving change, later weeks
    can shift one person's local time by an hour; the shared hours account for that."""
    first_week = slice(0, SLOTS_PER_WEEK)
    both = (
        week_mask(mentee.timezone, mentee.availability, calendar)[first_week]
        & week_mask(mentor.timezone, mentor.availability, calendar)[first_week]
    )
    origin = datetime.combine(calendar.start, time(), UTC)
    slots = []
    for start, length in sorted(_runs(both), key=lambda run: (-run[1], run[0]))[:count]:
        begin = origin + timedelta(minutes=start * SLOT_MINUTES)
        end = begin + timedelta(minutes=length * SLOT_MINUTES)
        slots.append(
            Slot(
                begin, length * SLOT_MINUTES, _local(begin, end, mentee), _local(begin, end, mentor)
            )
        )
    return slots


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each stretch of True, joining one that wraps past Sunday midnight."""
    if mask.all():
        return [(0, len(mask))]
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    runs = [(int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)]
    if len(runs) > 1 and mask[0] and mask[-1]:
        first, last = runs.pop(0), runs.pop()
        runs.append((last[0], last[1] + first[1]))
    return runs


def _local(begin: datetime, end: datetime, person: Profile) -> str:
    zone = ZoneInfo(person.timezone)
    a, b = begin.astimezone(zone), end.astimezone(zone)
    until = f"{b:%H:%M}" if a.date() == b.date() else f"{b:%a %H:%M}"
    return f"{a:%a %H:%M}-{until} {person.timezone}"
