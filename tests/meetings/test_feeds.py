"""A participant's private calendar feed: a secret URL that shows their booked meetings,
stops when rotated or revoked, and is dead once the person has no account."""

from __future__ import annotations

from icalendar import Calendar

from tests.meetings.conftest import MakeNode
from tests.meetings.test_meetings import ANA, BEN, booked_pair, people


async def test_the_feed_lists_booked_meetings_until_rotated_revoked_or_deactivated(
    make_node: MakeNode, database_url: str
) -> None:
    node = await make_node(people=people(), database_url=database_url)
    pair, booked = await booked_pair(node, every_weeks=2, until="2030-05-01")
    ben = node.member(pair["room"], BEN)
    url = (await node.ok("POST", "/api/v1/me/calendar", ben))["url"]
    assert url.startswith("https://pairwise.example.org/calendar/") and url.endswith(".ics")
    path = url.removeprefix("https://pairwise.example.org")
    resp = await node.client.get(path)
    assert resp.status == 200 and resp.content_type == "text/calendar"
    assert resp.headers["Cache-Control"] == "no-store"
    (event,) = Calendar.from_ical(await resp.text()).walk("VEVENT")
    assert str(event["UID"]) == f"meeting-{booked['id']}@pairwise.example.org"
    assert event.decoded("DTSTART").hour == 9 and "RRULE" in event
    assert "ATTENDEE" not in event  # the partner's address is not in anyone's feed

    # Ana's feed is her own secret: Ben's URL does not open it, and hers shows the same.
    ana_url = (
        await node.ok("POST", "/api/v1/me/calendar", node.member(pair["room"], ANA, "mentor"))
    )["url"]
    assert ana_url != url

    # Rotating: the old URL is dead at once, the new one works.
    new_url = (await node.ok("POST", "/api/v1/me/calendar", ben))["url"]
    assert (await node.client.get(path)).status == 404
    new_path = new_url.removeprefix("https://pairwise.example.org")
    assert (await node.client.get(new_path)).status == 200

    # A cancelled meeting leaves the feed.
    await node.ok(
        "POST",
        f"/api/v1/pairs/{pair['id']}/meetings/{booked['id']}/cancel",
        node.member(pair["room"], ANA, "mentor"),
    )
    assert Calendar.from_ical(await (await node.client.get(new_path)).text()).walk("VEVENT") == []

    # Deactivated (no account any more): the feed is dead whatever the URL; back when active.
    del node.people.emails[BEN]
    assert (await node.client.get(new_path)).status == 404
    node.people.emails[BEN] = "ben@mail.example.org"
    assert (await node.client.get(new_path)).status == 200

    # Revoked: dead.
    assert (await node.ok("DELETE", "/api/v1/me/calendar", ben))["revoked"] is True
    assert (await node.client.get(new_path)).status == 404


async def test_the_feed_of_an_ended_pair_is_empty(make_node: MakeNode) -> None:
    node = await make_node(people=people())
    pair, _ = await booked_pair(node)
    url = (await node.ok("POST", "/api/v1/me/calendar", node.member(pair["room"], BEN)))["url"]
    path = url.removeprefix("https://pairwise.example.org")
    assert len(Calendar.from_ical(await (await node.client.get(path)).text()).walk("VEVENT")) == 1
    assert node.services.sessionlog is not None
    await node.services.sessionlog.pairs.set_status(pair["id"], "unpublished")
    assert Calendar.from_ical(await (await node.client.get(path)).text()).walk("VEVENT") == []
