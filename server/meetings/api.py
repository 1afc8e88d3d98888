"""REST for meetings: a pair's members propose, accept, move and cancel; operators read.
And each participant's private calendar feed, at a secret URL they can rotate or revoke.

Members call with their join token for the pair's room; who is a member of the path's pair
and who an operator comes from `server.api.pair_access`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.api.access import Access, member_of
from server.api.http import RouteTable, json_response, read_body
from server.api.pair_access import pair_seen, pair_written
from server.errors import NotFound
from server.meetings import calendar
from server.meetings.digest import ChatDigest
from server.meetings.feeds import CalendarFeeds
from server.meetings.model import Meeting, local_text
from server.meetings.service import MAX_OPTIONS, Meetings, bare_address
from server.pairs.model import Pair
from server.webhooks import api as webhooks
from server.webhooks.events import meeting_booked

routes = RouteTable()
MEETINGS = web.AppKey("meetings", Meetings)
DIGEST = web.AppKey("chat_digest", ChatDigest)
PREFIX = "/api/v1"
TAGS = ("meetings",)
MEETING = f"{PREFIX}/pairs/{{pair_id}}/meetings/{{meeting_id}}"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProposeIn(Body):
    title: str = Field(min_length=1, max_length=200)
    times: list[datetime] = Field(
        min_length=1, max_length=MAX_OPTIONS, description="candidate starts, with UTC offset"
    )
    minutes: int = Field(60, ge=15, le=480)
    timezone: str | None = Field(
        None, max_length=64, description="the proposer's zone (default: their profile's)"
    )
    every_weeks: int | None = Field(None, ge=1, le=8, description="a series: every N weeks")
    until: date | None = Field(None, description="a series' last date (inclusive)")


class AcceptIn(Body):
    option: int = Field(ge=0, lt=MAX_OPTIONS, description="which proposed time (0-based)")


class RescheduleIn(Body):
    start: datetime = Field(description="the new start, with UTC offset")


def _meetings(request: web.Request) -> Meetings:
    return request.app[MEETINGS]


async def _meeting(request: web.Request, pair: Pair) -> Meeting:
    meeting = await _meetings(request).store.get(request.match_info["meeting_id"])
    if meeting.pair_id != pair.id:
        raise NotFound("no such meeting in this pair", code="no_meeting")
    return meeting


async def meeting_json(service: Meetings, meeting: Meeting, pair: Pair) -> dict[str, Any]:
    """The meeting, with each member's local time of each start."""
    zones = await service.zones(pair, meeting)
    starts = [datetime.fromtimestamp(t, UTC) for t in meeting.options]

    def local(instant: datetime) -> dict[str, str]:
        return {identity: local_text(instant, zone) for identity, zone in zones.items()}

    return {
        "id": meeting.id,
        "pair_id": meeting.pair_id,
        "title": meeting.title,
        "status": meeting.status,
        "proposed_by": meeting.proposed_by,
        "minutes": meeting.minutes,
        "timezone": meeting.timezone,
        "every_weeks": meeting.every_weeks,
        "until": meeting.until.isoformat() if meeting.until else None,
        "sequence": meeting.sequence,
        "options": [{"start_utc": s.isoformat(), "local": local(s)} for s in starts],
        "occurrences": [
            {"start_utc": s.isoformat(), "local": local(s)} for s in meeting.occurrences()
        ],
        "zones": zones,
    }


@routes.route(
    "GET",
    f"{PREFIX}/pairs/{{pair_id}}/meetings",
    summary="A pair's meetings, each start in each member's own zone",
    errors=(401, 403, 404),
    access=Access.PAIR,
    tags=TAGS,
)
async def list_meetings(request: web.Request) -> web.Response:
    _, pair = await pair_seen(request, _meetings(request).pairs)
    service = _meetings(request)
    found = await service.store.of_pair(pair.id)
    return json_response({"meetings": [await meeting_json(service, m, pair) for m in found]})


@routes.route(
    "GET",
    f"{PREFIX}/pairs/{{pair_id}}/meetings/suggestions",
    summary="Times both members are free next week (from their matching availability)",
    errors=(401, 403, 404),
    access=Access.PAIR,
    tags=TAGS,
)
async def suggestions(request: web.Request) -> web.Response:
    _, pair = await pair_seen(request, _meetings(request).pairs)
    slots = await _meetings(request).suggestions(pair)
    return json_response({"suggestions": [s.to_json() for s in slots]})


@routes.route(
    "POST",
    f"{PREFIX}/pairs/{{pair_id}}/meetings",
    summary="Propose a meeting at one of some times (members of an active pair)",
    body=ProposeIn,
    status=201,
    errors=(401, 403, 404, 422),
    access=Access.MEMBER,
    tags=TAGS,
)
async def propose(request: web.Request) -> web.Response:
    member, pair = await pair_written(request, _meetings(request).pairs)
    body = await read_body(request, ProposeIn)
    service = _meetings(request)
    meeting = await service.propose(
        pair,
        member.identity,
        title=body.title,
        options=body.times,
        minutes=body.minutes,
        timezone=body.timezone,
        every_weeks=body.every_weeks,
        until=body.until,
    )
    return json_response(await meeting_json(service, meeting, pair), status=201)


@routes.route(
    "POST",
    f"{MEETING}/accept",
    summary="Accept one of the proposed times (the other member): the meeting is booked",
    body=AcceptIn,
    errors=(401, 403, 404, 409, 422),
    access=Access.MEMBER,
    tags=TAGS,
)
async def accept(request: web.Request) -> web.Response:
    member, pair = await pair_written(request, _meetings(request).pairs)
    meeting = await _meeting(request, pair)
    body = await read_body(request, AcceptIn)
    service = _meetings(request)
    booked = await service.accept(meeting, pair, member.identity, body.option)
    await webhooks.emit(request, meeting_booked(booked, booked.updated_at))
    return json_response(await meeting_json(service, booked, pair))


@routes.route(
    "POST",
    f"{MEETING}/reschedule",
    summary="Move a booked meeting (a series as a whole); invites go out again",
    body=RescheduleIn,
    errors=(401, 403, 404, 409, 422),
    access=Access.MEMBER,
    tags=TAGS,
)
async def reschedule(request: web.Request) -> web.Response:
    member, pair = await pair_written(request, _meetings(request).pairs)
    meeting = await _meeting(request, pair)
    body = await read_body(request, RescheduleIn)
    service = _meetings(request)
    moved = await service.reschedule(meeting, pair, member.identity, body.start)
    return json_response(await meeting_json(service, moved, pair))


@routes.route(
    "POST",
    f"{MEETING}/cancel",
    summary="Cancel a meeting; invitees get a calendar CANCEL",
    errors=(401, 403, 404, 409),
    access=Access.MEMBER,
    tags=TAGS,
)
async def cancel(request: web.Request) -> web.Response:
    member, pair = await pair_written(request, _meetings(request).pairs)
    meeting = await _meeting(request, pair)
    service = _meetings(request)
    cancelled = await service.cancel(meeting, pair, member.identity)
    return json_response(await meeting_json(service, cancelled, pair))


# --- calendar feeds ------------------------------------------------------------------------


def _feed_url(request: web.Request, secret: str) -> str:
    return f"{_meetings(request).base_url}/calendar/{secret}.ics"


@routes.route(
    "POST",
    f"{PREFIX}/me/calendar",
    summary="A new secret URL for your calendar feed (the previous one stops working)",
    status=201,
    errors=(401, 403),
    access=Access.MEMBER,
    tags=TAGS,
)
async def rotate_feed(request: web.Request) -> web.Response:
    identity = member_of(request).identity
    secret = await _feeds(request).rotate(identity)
    return json_response({"url": _feed_url(request, secret)}, status=201)


@routes.route(
    "DELETE",
    f"{PREFIX}/me/calendar",
    summary="Turn your calendar feed off",
    errors=(401, 403),
    access=Access.MEMBER,
    tags=TAGS,
)
async def revoke_feed(request: web.Request) -> web.Response:
    revoked = await _feeds(request).revoke(member_of(request).identity)
    return json_response({"revoked": revoked})


@routes.route(
    "GET",
    "/calendar/{secret}.ics",
    summary="A participant's calendar feed; the secret in the URL is the credential",
    errors=(404,),
    access=Access.PUBLIC,
    tags=TAGS,
)
async def calendar_feed(request: web.Request) -> web.Response:
    service = _meetings(request)
    identity = await _feeds(request).identity_of(request.match_info["secret"])
    # A person removed or deactivated (no account any more) has no feed, whatever the URL.
    if identity is None or await service.directory.email_of(identity) is None:
        raise NotFound("no such calendar", code="no_calendar")
    events = []
    for meeting in await service.store.of_identity(identity):
        if meeting.status != "booked":
            continue
        events.append(
            calendar.event_of(
                meeting,
                domain=service.domain,
                join_url=service.join_url,
                organizer=bare_address(service.mailer.sender),
                attendees=(),
            )
        )
    body = calendar.feed(events, "Pairwise meetings")
    return web.Response(
        body=body,
        content_type="text/calendar",
        charset="utf-8",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _feeds(request: web.Request) -> CalendarFeeds:
    return _meetings(request).feeds


# --- chat digest ---------------------------------------------------------------------------

UNSUBSCRIBE_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chat digests</title></head><body><main>
<h1>Stop chat digest emails?</h1>
<form method="post"><button type="submit">Stop them</button></form>
</main></body></html>"""


def _digest(request: web.Request) -> ChatDigest:
    return request.app[DIGEST]


@routes.route(
    "GET",
    "/digest/unsubscribe/{token}",
    summary="The page an unsubscribe link opens (a button; opening it changes nothing)",
    errors=(404,),
    access=Access.PUBLIC,
    tags=TAGS,
)
async def unsubscribe_page(request: web.Request) -> web.Response:
    _digest(request).identity_of(request.match_info["token"])
    return web.Response(text=UNSUBSCRIBE_PAGE, content_type="text/html")


@routes.route(
    "POST",
    "/digest/unsubscribe/{token}",
    summary="Stop chat digest emails (the signed link's one-click unsubscribe, RFC 8058)",
    errors=(404,),
    access=Access.PUBLIC,
    tags=TAGS,
)
async def unsubscribe(request: web.Request) -> web.Response:
    await _digest(request).unsubscribe(request.match_info["token"])
    return web.Response(
        text="<!doctype html><title>Chat digests</title><p>No more chat digest emails.</p>",
        content_type="text/html",
    )
