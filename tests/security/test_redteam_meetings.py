"""Red team against meetings: a member proposing a time no calendar can hold. A start in
year 9999 passed the checks ("in the future") and was stored; showing it in a zone east of
UTC overflows `datetime`, so the answer was a 500 and every later list of the pair's
meetings too: one request broke both members' meetings page for good."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from server.privacy.erasure import forget
from server.store.schema import calendar_feeds, meetings
from tests.meetings.conftest import MakeNode, make_node, smtp  # noqa: F401 (fixtures)

FAR = [
    "9999-12-31T23:00:00+00:00",
    "9999-12-31T23:00:00-12:00",  # past datetime.max once in UTC
    "3030-01-01T10:00:00+00:00",
]  # the clock: 2030-03-01


async def test_a_time_beyond_any_calendar_is_refused_and_the_list_stays_up(
    make_node: MakeNode,  # noqa: F811
) -> None:
    node = await make_node()
    pair = await node.pair("sam", "maya")
    maya = node.member("room-1", "maya")
    path = f"/api/v1/pairs/{pair['id']}/meetings"
    for far in FAR:
        status, answer = await node.call(
            "POST",
            path,
            maya,
            {"title": "Forever", "times": [far], "timezone": "Pacific/Kiritimati"},
        )
        assert status == 422, answer
        assert answer["error"]["code"] == "time_far"
    status, listed = await node.call("GET", path, maya)
    assert status == 200 and listed["meetings"] == [], listed
    # The way back: a time within the year ahead is proposed.
    soon: Any = await node.ok(
        "POST",
        path,
        maya,
        {"title": "Soon", "times": ["2030-06-01T10:00:00+00:00"], "timezone": "Pacific/Kiritimati"},
    )
    assert soon["status"] == "proposed"
    sam = node.member("room-1", "sam", "mentor")
    await node.ok("POST", f"{path}/{soon['id']}/accept", sam, {"option": 0})
    # Moving the booked meeting there is refused the same way.
    for far in FAR:
        status, answer = await node.call(
            "POST", f"{path}/{soon['id']}/reschedule", sam, {"start": far}
        )
        assert status == 422 and answer["error"]["code"] == "time_far", answer
    status, listed = await node.call("GET", path, maya)
    assert status == 200 and [m["status"] for m in listed["meetings"]] == ["booked"], listed


async def test_an_erasure_leaves_no_meeting_or_calendar_feed_naming_the_person(
    make_node: MakeNode,  # noqa: F811
) -> None:
    """The privacy inventory missed the meetings tables: after erasing Maya, her calendar
    feed row and the meetings she proposed still named her."""
    node = await make_node()
    pair = await node.pair("sam", "maya")
    maya = node.member("room-1", "maya")
    path = f"/api/v1/pairs/{pair['id']}/meetings"
    await node.ok("POST", path, maya, {"title": "Us", "times": ["2030-06-01T10:00:00+00:00"]})
    await node.ok("POST", "/api/v1/me/calendar", maya)

    outcome = await forget(node.services.database, "maya", "erase", "dana")

    async with node.services.database.connect() as conn:
        proposers = (await conn.execute(select(meetings.c.proposed_by))).scalars().all()
        feeds = (await conn.execute(select(calendar_feeds.c.identity))).scalars().all()
    assert proposers == [outcome.pseudonym] and "maya" not in feeds
