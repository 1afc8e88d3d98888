"""Shared hours from local windows, across daylight-saving changes; slot suggestions."""

from __future__ import annotations

from datetime import date

import pytest

from server.matching.availability import Calendar, shared_hours, week_mask
from server.matching.profiles import Profile, parse_availability
from server.matching.slots import suggest_slots


def person(identity: str, tz: str, windows: str, role: str = "mentee") -> Profile:
    return Profile(identity, identity, role, tz, parse_availability(windows))  # type: ignore[arg-type]


NEW_YORK = person("ny", "America/New_York", "Mon 09:00-12:00", "mentor")
LONDON = person("ldn", "Europe/London", "Mon 13:00-15:00")


@pytest.mark.parametrize(
    ("monday", "hours"),
    [
        (date(2025, 3, 3), 1.0),  # both on winter time: New York 09:00 = 14:00 UTC
        (date(2025, 3, 10), 2.0),  # the US moved on 9 March, the UK not yet: 13:00 UTC
        (date(2025, 3, 31), 1.0),  # the UK moved on 30 March: London 13:00 = 12:00 UTC
    ],
)
def test_dst_changes_the_shared_hours(monday: date, hours: float) -> None:
    assert shared_hours(NEW_YORK, LONDON, Calendar(monday)) == hours


def test_a_calendar_of_several_weeks_averages_them() -> None:
    # 3 March: 1 h; 10, 17 and 24 March: 2 h each.
    assert shared_hours(NEW_YORK, LONDON, Calendar(date(2025, 3, 3), weeks=4)) == 1.75


def test_windows_wrap_around_the_utc_week() -> None:
    sydney = person("syd", "Australia/Sydney", "Mon 08:00-09:00")  # Sunday 21:00 UTC
    utc = person("utc", "UTC", "Sun 21:00-23:00", "mentor")
    calendar = Calendar(date(2025, 3, 10))
    assert week_mask(sydney.timezone, sydney.availability, calendar)[-12:-8].all()
    assert shared_hours(sydney, utc, calendar) == 1.0


def test_spring_forward_night_counts_real_time() -> None:
    # 02:00-04:00 local on the night clocks go forward is one real hour.
    night = person("n", "America/New_York", "Sun 01:00-04:00")
    anyone = person("a", "UTC", "Sun 00:00-24:00", "mentor")
    assert shared_hours(night, anyone, Calendar(date(2025, 3, 3))) == 2.0


def test_calendar_must_start_on_monday() -> None:
    with pytest.raises(ValueError, match="Monday"):
        Calendar(date(2025, 3, 4))


def test_slots_in_each_local_time() -> None:
    slots = suggest_slots(LONDON, NEW_YORK, Calendar(date(2025, 3, 10)))
    assert [(s.mentee_local, s.mentor_local, s.minutes) for s in slots] == [
        ("Mon 13:00-15:00 Europe/London", "Mon 09:00-11:00 America/New_York", 120)
    ]
    assert slots[0].start_utc.isoformat() == "2025-03-10T13:00:00+00:00"


def test_top_three_slots_longest_first() -> None:
    a = person(
        "a", "Asia/Tokyo", "Tue 09:00-10:00; Wed 09:00-12:00; Thu 09:00-11:00; Fri 09:00-09:30"
    )
    b = person("b", "Asia/Tokyo", "Tue 00:00-24:00; Wed 00:00-24:00; Thu 00:00-24:00; Fri 00:00-24:00",
               "mentor")  # fmt: skip
    slots = suggest_slots(a, b, Calendar(date(2025, 3, 10)))
    assert [s.mentee_local for s in slots] == [
        "Wed 09:00-12:00 Asia/Tokyo", "Thu 09:00-11:00 Asia/Tokyo", "Tue 09:00-10:00 Asia/Tokyo",
    ]  # fmt: skip
