"""iCalendar for meetings: an invite (METHOD REQUEST or CANCEL) and a participant's feed.

A meeting is one VEVENT with a stable UID (the meeting's id), so a calendar that got the
invite updates the same entry when a later one (higher SEQUENCE) moves or cancels it. A
series is that VEVENT with an RRULE in the meeting's own zone (DTSTART;TZID=...), which
every calendar app expands at the same local time across a clock change, as the server's
own occurrences do. The event links to the join page (`/me`), which asks the person to
sign in and mints a short-lived join token then: an invite forwarded or left in a mailbox
opens no room.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vRecur

from server.meetings.model import CANCELLED, Meeting
from server.meetings.text import plain

PRODID = "-//Pairwise//Meetings//EN"


def uid_of(meeting: Meeting, domain: str) -> str:
    return f"meeting-{meeting.id}@{domain}"


def event_of(
    meeting: Meeting,
    *,
    domain: str,
    join_url: str,
    organizer: str,
    attendees: Sequence[tuple[str, str]],
    cancelled: bool = False,
) -> Event:
    """The meeting's VEVENT; `attendees` are (name, email) pairs."""
    assert meeting.start_utc is not None, "only a booked meeting is on a calendar"
    zone = ZoneInfo(meeting.timezone)
    start = datetime.fromtimestamp(meeting.start_utc, UTC).astimezone(zone)
    event = Event()
    event.add("uid", uid_of(meeting, domain))
    event.add("dtstamp", datetime.fromtimestamp(meeting.updated_at, UTC))
    event.add("sequence", meeting.sequence)
    event.add("summary", plain(meeting.title))
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=meeting.minutes))
    event.add("url", join_url)
    event.add("description", f"Join from your Pairwise page: {join_url}")
    event.add("location", join_url)
    event.add("status", "CANCELLED" if cancelled or meeting.status == CANCELLED else "CONFIRMED")
    if meeting.every_weeks and meeting.until:
        last = datetime.combine(meeting.until, start.timetz().replace(tzinfo=None), zone)
        rule = {"freq": "weekly", "interval": meeting.every_weeks, "until": last.astimezone(UTC)}
        event.add("rrule", vRecur(rule))
    event.add("organizer", _address(organizer, "Pairwise"))
    for name, email in attendees:
        attendee = _address(email, name)
        attendee.params["ROLE"] = "REQ-PARTICIPANT"
        event.add("attendee", attendee, encode=False)
    return event


def invite(event: Event, method: str) -> bytes:
    """A calendar with one event, for an email (METHOD REQUEST or CANCEL)."""
    return _calendar([event], method=method)


def feed(events: Sequence[Event], name: str) -> bytes:
    return _calendar(events, name=name)


def _calendar(events: Sequence[Event], *, method: str | None = None, name: str = "") -> bytes:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    if method:
        cal.add("method", method)
    if name:
        cal.add("x-wr-calname", plain(name))
    for event in events:
        cal.add_component(event)
    cal.add_missing_timezones()
    return bytes(cal.to_ical())


def _address(email: str, name: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{plain(email)}")
    address.params["CN"] = plain(name)
    return address
