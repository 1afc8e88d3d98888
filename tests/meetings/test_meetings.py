"""Meetings end to end through a real SMTP server: booking sends .ics invites whose times
are right in each person's zone across a clock change; moving and cancelling update the
same calendar entry; reminders and the "your partner is waiting" note go out at their
times; a closed pair cannot book and its meetings are cancelled; titles with line breaks
are refused. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from icalendar import Calendar

from server.meetings.model import occurrences
from tests.conftest import ADMIN
from tests.meetings.conftest import T0, MakeNode, Node, People, SmtpSink

ANA, BEN = "ana@example.org", "ben@example.org"  # mentor in New York, mentee in London
NY, LONDON = ZoneInfo("America/New_York"), ZoneInfo("Europe/London")
# Monday 4 March 2030, 09:00 in New York (14:00 UTC and in London).
FIRST = datetime(2030, 3, 4, 14, 0, tzinfo=UTC)


def people() -> People:
    return People({ANA: "ana@mail.example.org", BEN: "ben@mail.example.org"})


async def booked_pair(node: Node, **series: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    await node.profiles(
        {"identity": ANA, "name": "Ana", "role": "mentor", "timezone": "America/New_York",
         "availability": ["Mon 08:00-12:00"]},
        {"identity": BEN, "name": "Ben", "role": "mentee", "timezone": "Europe/London",
         "availability": ["Mon 13:00-17:00"]},
    )  # fmt: skip
    pair = await node.pair(ANA, BEN)
    base = f"/api/v1/pairs/{pair['id']}/meetings"
    proposed = await node.ok(
        "POST",
        base,
        node.member(pair["room"], ANA, "mentor"),
        {"title": "Weekly", "times": [FIRST.isoformat(), (FIRST + timedelta(hours=1)).isoformat()],
         "minutes": 45, **series},
    )  # fmt: skip
    assert proposed["status"] == "proposed" and proposed["timezone"] == "America/New_York"
    booked = await node.ok(
        "POST", f"{base}/{proposed['id']}/accept", node.member(pair["room"], BEN), {"option": 0}
    )
    assert booked["status"] == "booked"
    return pair, booked


def calendar_of(message: EmailMessage) -> Calendar:
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    return Calendar.from_ical(part.get_content())


def by_recipient(messages: list[EmailMessage]) -> dict[str, EmailMessage]:
    return {str(m["To"]): m for m in messages}


async def test_invites_show_each_persons_local_time_across_a_dst_change(
    make_node: MakeNode, smtp: SmtpSink, database_url: str
) -> None:
    node = await make_node(people=people(), database_url=database_url)
    pair, booked = await booked_pair(node, every_weeks=1, until="2030-04-01")
    # Each person's local time of each occurrence: New York keeps 09:00; London sees the
    # US change (13:00 from 11 March) and its own (14:00 again on 1 April).
    local = [(o["local"][ANA][:30], o["local"][BEN][:30]) for o in booked["occurrences"]]
    assert [o["start_utc"][11:16] for o in booked["occurrences"]] == [
        "14:00", "13:00", "13:00", "13:00", "13:00"
    ]  # fmt: skip
    assert [a.split(", ")[1][:5] for a, _ in local] == ["09:00"] * 5
    assert [b.split(", ")[1][:5] for _, b in local] == ["14:00", "13:00", "13:00", "13:00", "14:00"]

    await node.run_jobs()
    mail = by_recipient(await smtp.take(2))
    assert set(mail) == {"ana@mail.example.org", "ben@mail.example.org"}
    for to, zone, clock in (("ana", NY, "09:00"), ("ben", LONDON, "14:00")):
        message = mail[f"{to}@mail.example.org"]
        assert message["Subject"] == "Invitation: Weekly"
        assert f"{clock} ({zone.key})" in message.get_body(("plain",)).get_content()
        cal = calendar_of(message)
        assert str(cal["METHOD"]) == "REQUEST"
        (event,) = cal.walk("VEVENT")
        assert str(event["UID"]) == f"meeting-{booked['id']}@pairwise.example.org"
        assert int(event["SEQUENCE"]) == 0
        start = event.decoded("DTSTART")
        assert start.tzinfo.key == "America/New_York" and start.hour == 9  # type: ignore[union-attr]
        assert event.decoded("DTEND") - start == timedelta(minutes=45)
        # A calendar app expands the series at 09:00 New York: London sees the shift.
        rule = rrulestr(event["RRULE"].to_ical().decode(), dtstart=start)
        seen = [d.astimezone(zone).strftime("%d %H:%M") for d in rule]
        expect = {NY: ["04 09:00", "11 09:00", "18 09:00", "25 09:00", "01 09:00"],
                  LONDON: ["04 14:00", "11 13:00", "18 13:00", "25 13:00", "01 14:00"]}  # fmt: skip
        assert seen == expect[zone]
        # The invite links to the sign-in page, and carries no join token.
        assert str(event["URL"]) == "https://pairwise.example.org/me"
        assert "eyJ" not in message.as_string() and "token" not in message.as_string().lower()
        assert sorted(str(a) for a in event["ATTENDEE"]) == [
            "mailto:ana@mail.example.org", "mailto:ben@mail.example.org"
        ]  # fmt: skip


def test_a_series_keeps_its_local_time_in_its_zone() -> None:
    """The pure rule, both ways across both changes (spring forward, fall back)."""
    spring = occurrences(FIRST.timestamp(), "America/New_York", 1, datetime(2030, 3, 25).date())
    assert [d.astimezone(NY).hour for d in spring] == [9, 9, 9, 9]
    assert [d.hour for d in spring] == [14, 13, 13, 13]
    autumn_first = datetime(2030, 10, 21, 13, 0, tzinfo=UTC)  # 14:00 London (BST)
    autumn = occurrences(autumn_first.timestamp(), "Europe/London", 2, datetime(2030, 11, 4).date())
    assert [d.astimezone(LONDON).hour for d in autumn] == [14, 14]
    assert [d.hour for d in autumn] == [13, 14]


async def test_moving_and_cancelling_update_the_same_calendar_entry(
    make_node: MakeNode, smtp: SmtpSink, database_url: str
) -> None:
    node = await make_node(people=people(), database_url=database_url)
    pair, booked = await booked_pair(node)
    await node.run_jobs()
    first = calendar_of((await smtp.take(2))[0]).walk("VEVENT")[0]
    meeting = f"/api/v1/pairs/{pair['id']}/meetings/{booked['id']}"
    later = FIRST + timedelta(days=1)
    moved = await node.ok(
        "POST",
        f"{meeting}/reschedule",
        node.member(pair["room"], BEN),
        {"start": later.isoformat()},
    )
    assert moved["sequence"] == 1
    await node.run_jobs()
    messages = await smtp.take(2)
    assert {m["Subject"] for m in messages} == {"Moved: Weekly"}
    event = calendar_of(messages[0]).walk("VEVENT")[0]
    assert event["UID"] == first["UID"] and int(event["SEQUENCE"]) == 1
    assert event.decoded("DTSTART").astimezone(UTC) == later

    await node.ok("POST", f"{meeting}/cancel", node.member(pair["room"], ANA, "mentor"))
    await node.run_jobs()
    messages = await smtp.take(2)
    cal = calendar_of(messages[0])
    assert str(cal["METHOD"]) == "CANCEL"
    (event,) = cal.walk("VEVENT")
    assert event["UID"] == first["UID"] and int(event["SEQUENCE"]) == 2
    assert str(event["STATUS"]) == "CANCELLED"
    # No reminder of the old or the moved time is left.
    node.clock.now = later.timestamp() + 3600
    await node.run_jobs()
    assert [(m["Subject"], m["To"]) for m in smtp.drained()] == []


async def test_reminders_go_24h_and_15min_before(
    make_node: MakeNode, smtp: SmtpSink, database_url: str
) -> None:
    node = await make_node(people=people(), database_url=database_url)
    await booked_pair(node)
    await node.run_jobs()
    await smtp.take(2)  # the invites
    node.clock.now = FIRST.timestamp() - 24 * 3600 - 1
    await node.run_jobs()
    assert smtp.drained() == []  # not a second early
    node.clock.advance(1)
    await node.run_jobs()
    day = by_recipient(await smtp.take(2))
    assert day["ben@mail.example.org"]["Subject"] == "Reminder: Weekly in 24 hours"
    assert "14:00 (Europe/London)" in day["ben@mail.example.org"].get_content()
    assert "09:00 (America/New_York)" in day["ana@mail.example.org"].get_content()
    node.clock.now = FIRST.timestamp() - 15 * 60
    await node.run_jobs()
    soon = await smtp.take(2)
    assert {m["Subject"] for m in soon} == {"Reminder: Weekly in 15 minutes"}
    assert all("https://pairwise.example.org/me" in m.get_content() for m in soon)
    await node.run_jobs()
    assert smtp.drained() == []  # each once


@pytest.mark.parametrize("with_phone", [False, True])
async def test_the_absent_member_is_told_five_minutes_in(
    make_node: MakeNode, smtp: SmtpSink, with_phone: bool
) -> None:
    from tests.support.services import free_port

    phone = (
        {"sip_bind": f"127.0.0.1:{free_port()}", "sip_dialin_number": "+44 20 7946 0000"}
        if with_phone
        else {}
    )
    node = await make_node(people=people(), **phone)
    pair, _ = await booked_pair(node)
    await node.run_jobs()
    await smtp.take(2)
    node.services.rooms.join(pair["room"], ANA, "Ana", "mentor", "sid-ana")
    node.clock.now = FIRST.timestamp() + 5 * 60
    await node.run_jobs()
    (message,) = await smtp.take(1)
    assert message["To"] == "ben@mail.example.org"
    assert message["Subject"] == "Ana is waiting for you: Weekly"
    text = message.get_content()
    assert "https://pairwise.example.org/me" in text
    if with_phone:
        pins = node.services.dial_in
        assert pins is not None
        pin = await pins.pins.participant_pin(pair["room"], BEN, "Ben", "mentee")
        assert f"call +44 20 7946 0000 and enter PIN {pin}" in text
    else:
        assert "PIN" not in text
    assert smtp.drained() == []  # Ana, who is there, gets nothing


async def test_nobody_is_told_when_both_or_neither_came(
    make_node: MakeNode, smtp: SmtpSink
) -> None:
    node = await make_node(people=people())
    pair, _ = await booked_pair(node)
    await node.run_jobs()
    await smtp.take(2)
    node.services.rooms.join(pair["room"], ANA, "Ana", "mentor", "sid-ana")
    node.services.rooms.join(pair["room"], BEN, "Ben", "mentee", "sid-ben")
    node.clock.now = FIRST.timestamp() + 5 * 60
    await node.run_jobs()
    assert node.services.jobs is not None
    ran = await node.services.jobs.store.recent("meeting.reminder")
    assert len(ran) == 6 and {j.status for j in ran} == {"done"}  # 24 h, 15 min, absent
    assert smtp.drained() == []


async def test_a_closed_pair_cannot_book_and_its_meetings_are_cancelled(
    make_node: MakeNode, smtp: SmtpSink, database_url: str
) -> None:
    node = await make_node(people=people(), database_url=database_url)
    pair, booked = await booked_pair(node)
    await node.run_jobs()
    await smtp.take(2)
    log = node.services.sessionlog
    assert log is not None
    await log.pairs.set_status(pair["id"], "unpublished")  # as rematch does
    await node.run_jobs()
    cancels = await smtp.take(2)
    assert {str(calendar_of(m)["METHOD"]) for m in cancels} == {"CANCEL"}
    base = f"/api/v1/pairs/{pair['id']}/meetings"
    listed = await node.ok("GET", base, ADMIN)
    assert [m["status"] for m in listed["meetings"]] == ["cancelled"]
    status, payload = await node.call(
        "POST", base, node.member(pair["room"], ANA, "mentor"),
        {"title": "Again", "times": [FIRST.isoformat()]},
    )  # fmt: skip
    assert status == 403 and payload["error"]["code"] == "room_closed"
    node.clock.now = FIRST.timestamp() + 3600
    await node.run_jobs()
    assert smtp.drained() == []  # no reminders for a pair that ended
    # The way back: a pair made active again books again.
    await log.pairs.set_status(pair["id"], "active")
    await node.ok(
        "POST", base, node.member(pair["room"], ANA, "mentor"),
        {"title": "Again", "times": [(FIRST + timedelta(days=7)).isoformat()]},
    )  # fmt: skip


@pytest.mark.parametrize(
    "title", ["Weekly\r\nBcc: everyone@example.org", "Weekly\nX", "Tab\there", "Line\u2028sep"]
)
async def test_control_characters_in_a_title_are_refused(make_node: MakeNode, title: str) -> None:
    node = await make_node(people=people())
    pair = await node.pair(ANA, BEN)
    base = f"/api/v1/pairs/{pair['id']}/meetings"
    status, payload = await node.call(
        "POST", base, node.member(pair["room"], ANA, "mentor"),
        {"title": title, "times": [FIRST.isoformat()]},
    )  # fmt: skip
    assert status == 422 and payload["error"]["code"] == "control_character", payload
    assert (await node.ok("GET", base, ADMIN))["meetings"] == []


async def test_booking_rules(make_node: MakeNode) -> None:
    node = await make_node(people=people())
    pair = await node.pair(ANA, BEN)
    base = f"/api/v1/pairs/{pair['id']}/meetings"
    ana = node.member(pair["room"], ANA, "mentor")
    past = datetime.fromtimestamp(T0 - 60, UTC).isoformat()
    for body, code in (
        ({"title": "x", "times": [past]}, "time_past"),
        ({"title": "x", "times": ["2030-03-04T14:00:00"]}, "invalid_payload"),  # no offset
        ({"title": "x", "times": [FIRST.isoformat()], "timezone": "Mars/Base"}, "unknown_timezone"),
        ({"title": "x", "times": [FIRST.isoformat()], "every_weeks": 1}, "invalid_payload"),
        ({"title": "x", "times": [FIRST.isoformat()], "every_weeks": 1, "until": "2032-01-01"},
         "invalid_payload"),
    ):  # fmt: skip
        status, payload = await node.call("POST", base, ana, body)
        assert status == 422 and payload["error"]["code"] == code, (body, payload)
    proposed = await node.ok("POST", base, ana, {"title": "x", "times": [FIRST.isoformat()]})
    accept = f"{base}/{proposed['id']}/accept"
    status, payload = await node.call("POST", accept, ana, {"option": 0})
    assert status == 403 and payload["error"]["code"] == "own_proposal"
    ben = node.member(pair["room"], BEN)
    status, payload = await node.call("POST", accept, ben, {"option": 1})
    assert status == 422
    await node.ok("POST", accept, ben, {"option": 0})
    status, payload = await node.call("POST", accept, ben, {"option": 0})
    assert status == 409 and payload["error"]["code"] == "not_proposed"
    # A meeting of another pair is not found through this one.
    other = await node.pair("cy@example.org", "di@example.org", room="room-2")
    status, _ = await node.call(
        "POST",
        f"/api/v1/pairs/{other['id']}/meetings/{proposed['id']}/cancel",
        node.member("room-2", "cy@example.org", "mentor"),
    )
    assert status == 404


async def test_suggestions_come_from_both_availabilities(make_node: MakeNode) -> None:
    node = await make_node(people=people())
    await node.profiles(
        {"identity": ANA, "name": "Ana", "role": "mentor", "timezone": "America/New_York",
         "availability": ["Mon 08:00-12:00"]},
        {"identity": BEN, "name": "Ben", "role": "mentee", "timezone": "Europe/London",
         "availability": ["Mon 13:00-17:00"]},
    )  # fmt: skip
    pair = await node.pair(ANA, BEN)
    found = await node.ok(
        "GET", f"/api/v1/pairs/{pair['id']}/meetings/suggestions", node.member(pair["room"], BEN)
    )
    (slot,) = found["suggestions"]
    # Next week is 4 March: Ana 08:00-12:00 EST = 13:00-17:00 UTC; Ben 13:00-17:00 GMT.
    assert slot["start_utc"] == "2030-03-04T13:00:00+00:00" and slot["minutes"] == 240
    assert slot["mentor_local"].startswith("Mon 08:00-12:00")
