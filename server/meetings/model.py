"""A meeting and when it happens: one time, or every N weeks until a date.

A series keeps its local time in the meeting's zone: each occurrence is the first one's
wall-clock time N weeks later, read in that zone with zoneinfo, then stored and compared
in UTC. So a weekly 09:00 in America/New_York is 14:00 UTC in winter and 13:00 UTC after
the clocks go forward, and still 09:00 on the organiser's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

PROPOSED, BOOKED, CANCELLED = "proposed", "booked", "cancelled"
MAX_OCCURRENCES = 53  # a year of weekly meetings


@dataclass(frozen=True)
class Meeting:
    id: str
    pair_id: str
    title: str
    status: str  # proposed | booked | cancelled
    proposed_by: str
    options: tuple[float, ...]  # candidate starts, UTC epoch seconds
    start_utc: float | None  # the accepted start (the first occurrence)
    minutes: int
    timezone: str  # the zone a series keeps its local time in
    every_weeks: int | None
    until: date | None
    sequence: int  # iCalendar SEQUENCE: bumped each time the booking changes
    created_at: float
    updated_at: float

    def occurrences(self) -> list[datetime]:
        """The starts of a booked meeting, in UTC (nothing while only proposed)."""
        if self.start_utc is None:
            return []
        return occurrences(self.start_utc, self.timezone, self.every_weeks, self.until)

    def next_end_after(self, now: float) -> datetime | None:
        """The end of the first occurrence still running or to come at `now`."""
        length = timedelta(minutes=self.minutes)
        for start in self.occurrences():
            if (start + length).timestamp() > now:
                return start + length
        return None


def occurrences(
    start_utc: float, timezone: str, every_weeks: int | None, until: date | None
) -> list[datetime]:
    zone = ZoneInfo(timezone)
    first = datetime.fromtimestamp(start_utc, UTC)
    if not every_weeks or until is None:
        return [first]
    wall = first.astimezone(zone).replace(tzinfo=None)
    out = []
    for k in range(MAX_OCCURRENCES):
        local = wall + timedelta(weeks=k * every_weeks)
        if local.date() > until:
            break
        out.append(local.replace(tzinfo=zone).astimezone(UTC))
    return out


def local_text(instant: datetime, timezone: str) -> str:
    """ "Tue 4 Mar 2025, 14:00 (Europe/London)": the time as that person's clock shows it."""
    local = instant.astimezone(ZoneInfo(timezone))
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} ({timezone})"
