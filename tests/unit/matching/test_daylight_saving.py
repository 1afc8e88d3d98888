"""Shared hours and slots across every daylight-saving change of 2025-2027, checked
against a plain reference that looks at each minute on each person's clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.matching.availability import SLOT_HOURS, Calendar, availability_matrix, shared_hours
from server.matching.profiles import DAYS, Profile, parse_availability
from server.matching.slots import suggest_slots

MINUTE = timedelta(minutes=1)
DST_ZONES = (
    "America/New_York", "America/Los_Angeles", "Australia/Sydney", "Europe/London",
    "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago", "Pacific/Chatham",
)  # fmt: skip
OTHER_ZONES = ("UTC", "Asia/Kolkata", "Asia/Kathmandu", "Asia/Tokyo", "Pacific/Kiritimati")
ALL_ZONES = sorted(available_timezones())


def person(identity: str, tz: str, windows: str) -> Profile:
    return Profile(identity, identity, "mentee", tz, parse_availability(windows))


# -- the reference: one minute at a time, on the person's own clock ---------------------


def free_at(p: Profile, moment: datetime) -> bool:
    local = moment.astimezone(ZoneInfo(p.timezone))
    minute = local.hour * 60 + local.minute
    return any(w.day == local.weekday() and w.start <= minute < w.end for w in p.availability)


@lru_cache(maxsize=64)
def timeline(p: Profile, calendar: Calendar) -> tuple[datetime, tuple[bool, ...]]:
    """`free_at` for each minute from a day before the calendar to two days after it."""
    begin = datetime.combine(calendar.start, time(), UTC) - timedelta(days=1)
    minutes = (calendar.weeks * 7 + 3) * 24 * 60
    return begin, tuple(free_at(p, begin + k * MINUTE) for k in range(minutes))


def free(p: Profile, calendar: Calendar, moment: datetime) -> bool:
    begin, minutes = timeline(p, calendar)
    return minutes[(moment - begin) // MINUTE]


def reference_hours(a: Profile, b: Profile, calendar: Calendar) -> float:
    begin = datetime.combine(calendar.start, time(), UTC)
    minutes = calendar.weeks * 7 * 24 * 60
    both = [free(a, calendar, begin + k * MINUTE) and free(b, calendar, begin + k * MINUTE)
            for k in range(minutes)]  # fmt: skip
    return sum(both) / 60 / calendar.weeks


def reference_slots(mentee: Profile, mentor: Profile, calendar: Calendar) -> list[tuple]:
    """Stretches both are free that start in the mentee's first local week (Monday
    00:00 to Monday 00:00 on the mentee's clock), followed up to a day past its end; one
    already running when the week starts counts only if it lasts the whole week."""
    zone = ZoneInfo(mentee.timezone)
    begin = datetime.combine(calendar.start, time(), zone).astimezone(UTC)
    end = datetime.combine(calendar.start + timedelta(days=7), time(), zone).astimezone(UTC)
    week = int((end - begin) / MINUTE)
    origin = begin - MINUTE  # index 0 is the minute before the week
    span = week + 1 + 24 * 60
    both = [free(mentee, calendar, origin + k * MINUTE) and free(mentor, calendar, origin + k * MINUTE)
            for k in range(span)]  # fmt: skip
    stretches = []
    for k in range(1, week + 1):
        starts_here = both[k] and not both[k - 1]
        spans_the_week = k == 1 and all(both[0 : week + 1])
        if starts_here or spans_the_week:
            length = 0
            while k + length < span and both[k + length]:
                length += 1
            stretches.append((origin + k * MINUTE, length))
    stretches.sort(key=lambda s: (-s[1], s[0]))
    return stretches[:3]


# -- every change of 2025-2027 -----------------------------------------------------------


def changes(zone: str) -> list[date]:
    """Days on which the zone's clock changes, found by comparing offsets at noon UTC."""
    tz = ZoneInfo(zone)
    days = [date(2025, 1, 1) + timedelta(days=d) for d in range(3 * 365 + 2)]
    offsets = [datetime.combine(d, time(12), UTC).astimezone(tz).utcoffset() for d in days]
    return [days[k] for k in range(1, len(days)) if offsets[k] != offsets[k - 1]]


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


BOUNDARIES = sorted(
    {(zone, monday_of(day) + timedelta(days=shift))
     for zone in DST_ZONES[:5] for day in changes(zone) for shift in (0, 7)}
)  # fmt: skip
TRICKY = "Sun 23:00-02:00; Mon 00:00-00:30; Sat 22:00-03:30; Sun 01:00-03:15; Wed 09:00-17:00"


def test_every_change_of_the_named_zones_is_covered() -> None:
    # 2 changes a year in each zone for 3 years (a guard on the reference search itself).
    assert {zone: len(changes(zone)) for zone in DST_ZONES[:5]} == dict.fromkeys(DST_ZONES[:5], 6)


@pytest.mark.parametrize(("zone", "monday"), BOUNDARIES, ids=[f"{z}-{m}" for z, m in BOUNDARIES])
def test_hours_and_slots_at_each_change(zone: str, monday: date) -> None:
    calendar = Calendar(monday)
    local = person("a", zone, TRICKY)
    for other_zone in ("America/Los_Angeles", "Australia/Sydney", "Europe/London"):
        other = person("b", other_zone, "Sun 20:00-23:00; Mon 01:00-08:00; Sat 00:00-24:00")
        assert shared_hours(local, other, calendar) == reference_hours(local, other, calendar)
        got = [(s.start_utc, s.minutes) for s in suggest_slots(local, other, calendar)]
        assert got == reference_slots(local, other, calendar), (zone, other_zone)


# -- random zones, windows and calendars -------------------------------------------------


@st.composite
def windows(draw: st.DrawFn) -> str:
    items = []
    for _ in range(draw(st.integers(0, 4))):
        day = draw(st.sampled_from(DAYS)).title()
        start = draw(st.integers(0, 24 * 4 - 1)) * 15
        end = draw(st.integers(1, 24 * 4)) * 15  # at or before the start: past midnight
        if end != start:
            items.append(f"{day} {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}")
    return "; ".join(items)


zones = st.one_of(st.sampled_from(DST_ZONES + OTHER_ZONES), st.sampled_from(ALL_ZONES))
mondays = st.one_of(
    st.sampled_from(sorted({m for _, m in BOUNDARIES})),
    st.integers(0, 3 * 52).map(lambda w: date(2024, 12, 30) + timedelta(weeks=w)),
)


@settings(max_examples=40, deadline=None)
@given(zones, windows(), zones, windows(), mondays, st.integers(1, 2))
@example("America/New_York", "Sun 23:00-02:00", "America/Los_Angeles", "Sun 20:00-23:00",
         date(2025, 3, 3), 1)  # fmt: skip
def test_shared_hours_match_the_reference(
    zone_a: str, windows_a: str, zone_b: str, windows_b: str, monday: date, weeks: int
) -> None:
    a, b, calendar = (
        person("a", zone_a, windows_a),
        person("b", zone_b, windows_b),
        Calendar(monday, weeks),
    )
    assert shared_hours(a, b, calendar) == reference_hours(a, b, calendar)
    # The whole-cohort matrix the scorer multiplies reads the same clocks.
    both = availability_matrix([a, b, a], calendar)
    assert float(both[0] @ both[1]) * SLOT_HOURS / weeks == reference_hours(a, b, calendar)
    assert (both[0] == both[2]).all()


@settings(max_examples=40, deadline=None)
@given(zones, windows(), zones, windows(), mondays)
@example("America/Los_Angeles", "Sun 21:00-23:30", "America/Los_Angeles", "Sun 21:00-23:30",
         date(2025, 3, 3))  # fmt: skip
def test_slots_match_the_reference(
    zone_a: str, windows_a: str, zone_b: str, windows_b: str, monday: date
) -> None:
    mentee, mentor, calendar = (
        person("a", zone_a, windows_a),
        person("b", zone_b, windows_b),
        Calendar(monday),
    )
    slots = suggest_slots(mentee, mentor, calendar)
    assert [(s.start_utc, s.minutes) for s in slots] == reference_slots(mentee, mentor, calendar)
    for s in slots:
        for p, shown in ((mentee, s.mentee_local), (mentor, s.mentor_local)):
            last = s.start_utc + (s.minutes - 1) * MINUTE
            assert free_at(p, s.start_utc) and free_at(p, last)
            assert shown.startswith(f"{s.start_utc.astimezone(ZoneInfo(p.timezone)):%a %H:%M}-")


# -- the cases the issue names -----------------------------------------------------------


@pytest.mark.parametrize("monday", [date(2025, 3, d) for d in (3, 10, 17, 24, 31)])
def test_a_window_past_sunday_midnight_keeps_its_hours_every_week(monday: date) -> None:
    new_york = person("ny", "America/New_York", "Sun 23:00-02:00")
    los_angeles = person("la", "America/Los_Angeles", "Sun 20:00-23:00")
    assert shared_hours(new_york, los_angeles, Calendar(monday)) == 3.0


@pytest.mark.parametrize(
    ("monday", "start_utc"),
    [(date(2025, 3, 3), "2025-03-10T04:00:00+00:00"),  # Sunday 9 March, after the change
     (date(2025, 10, 27), "2025-11-03T05:00:00+00:00")],  # Sunday 2 November, after it
)  # fmt: skip
def test_a_slot_in_a_week_with_a_clock_change_is_when_both_are_free(
    monday: date, start_utc: str
) -> None:
    a = person("a", "America/Los_Angeles", "Sun 21:00-23:30")
    b = person("b", "America/Los_Angeles", "Sun 21:00-23:30")
    [slot] = suggest_slots(a, b, Calendar(monday))
    assert slot.mentee_local == slot.mentor_local == "Sun 21:00-23:30 America/Los_Angeles"
    assert slot.start_utc.isoformat() == start_utc
