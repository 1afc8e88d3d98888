"""Dial-in PINs over REST: operators (and the room page, through them) read and issue them.

POST /api/v1/rooms/{room}/pin                 the room's PIN, created on first use
GET  /api/v1/rooms/{room}/pin                 the room's PIN, 404 if none yet
POST /api/v1/rooms/{room}/participant-pins    a personal PIN that identifies the caller
GET  /api/v1/phone/calls                      live calls, for the operators' console
GET  /api/v1/phone/trunk                      the trunk and the gateway's registration there
GET  /api/v1/phone/guessing                   PINs refused, sources blocked (never the digits)
POST /api/v1/rooms/{room}/phone/call-me       "call me": a member has the gateway ring them
DELETE /api/v1/rooms/{room}/phone/call-me     ... and stops it ringing before they answer
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from server.api.access import Access, member_of
from server.api.http import RouteTable, json_response, read_body
from server.auth import Role
from server.errors import InvalidInput, NotFound
from server.phone.call import CallState
from server.phone.dial_in import DialIn
from server.rooms.ids import IDENTITY_PATTERN, ROOM_PATTERN

if TYPE_CHECKING:
    from server.media.service import MediaService
    from server.phone.gateway import PhoneGateway
    from server.signaling.server import Signaling

routes = RouteTable()
# Both None when the server runs without SIP (PAIRWISE_SIP_BIND unset).
DIAL_IN: web.AppKey[DialIn | None] = web.AppKey("dial_in")
PHONE: web.AppKey[PhoneGateway | None] = web.AppKey("phone")
# "Call me" (and stopping it) is for the room's members: an observer's or the admin key's
# Access.ROOM caller is refused with this.
ONLY_MEMBERS_CALLED = "only a member of the room can be called in"


class RoomPin(BaseModel):
    room: str
    pin: str
    dial_in_number: str


class ParticipantPinRequest(BaseModel):
    identity: str = Field(pattern=IDENTITY_PATTERN, description="Stable participant id")
    name: str = Field(min_length=1, max_length=200, description="Display name")
    role: Role


class ParticipantPin(BaseModel):
    room: str
    identity: str
    pin: str
    dial_in_number: str


def _dial_in(request: web.Request) -> tuple[DialIn, str]:
    dial_in = request.app[DIAL_IN]
    if dial_in is None:
        raise NotFound("phone dial-in is not enabled on this server", code="phone_disabled")
    room = request.match_info["room"]
    if not re.match(ROOM_PATTERN, room):
        raise InvalidInput("room: not a valid room name")
    return dial_in, room


def _gateway(request: web.Request) -> PhoneGateway:
    phone = request.app[PHONE]
    if phone is None:
        raise NotFound("phone dial-in is not enabled on this server", code="phone_disabled")
    return phone


async def _open_dial_in(request: web.Request) -> tuple[DialIn, str]:
    """`_dial_in` for issuing a PIN: refused (403 room_closed) when the room is closed."""
    dial_in, room = _dial_in(request)
    if dial_in.require_open_room is not None:
        await dial_in.require_open_room(room)
    return dial_in, room


@routes.route(
    "POST",
    "/api/v1/rooms/{room}/pin",
    summary="Create or return a room's dial-in PIN",
    response=RoomPin,
    access=Access.MANAGER,
    errors=(401, 403, 404, 422),
    tags=("phone",),
)
async def ensure_room_pin(request: web.Request) -> web.Response:
    dial_in, room = await _open_dial_in(request)
    pin = await dial_in.pins.ensure_room_pin(room)
    return json_response(RoomPin(room=room, pin=pin, dial_in_number=dial_in.number))


@routes.route(
    "GET",
    "/api/v1/rooms/{room}/pin",
    summary="A room's dial-in PIN",
    response=RoomPin,
    access=Access.MANAGER,
    errors=(401, 404, 422),
    tags=("phone",),
)
async def get_room_pin(request: web.Request) -> web.Response:
    dial_in, room = _dial_in(request)
    pin = await dial_in.pins.room_pin(room)
    if pin is None:
        raise NotFound(f"room {room!r} has no dial-in PIN yet", code="no_pin")
    return json_response(RoomPin(room=room, pin=pin, dial_in_number=dial_in.number))


@routes.route(
    "POST",
    "/api/v1/rooms/{room}/participant-pins",
    summary="Issue a participant's personal dial-in PIN",
    body=ParticipantPinRequest,
    response=ParticipantPin,
    status=201,
    access=Access.MANAGER,
    errors=(401, 403, 404, 422),
    tags=("phone",),
)
async def create_participant_pin(request: web.Request) -> web.Response:
    dial_in, room = await _open_dial_in(request)
    body = await read_body(request, ParticipantPinRequest)
    pin = await dial_in.pins.participant_pin(room, body.identity, body.name, str(body.role))
    return json_response(
        ParticipantPin(room=room, identity=body.identity, pin=pin, dial_in_number=dial_in.number),
        status=201,
    )


class LiveCall(BaseModel):
    state: Literal["ringing", "connected"] = Field(
        description='ringing: a "call me" the member has not answered yet (removing them, '
        "DELETE /api/v1/rooms/{room}/participants/{identity}, cancels it); connected"
    )
    room: str | None = Field(description="The room the caller is in; null while keying a PIN")
    identity: str | None
    caller: str = Field(description="The caller's number, all but the last 3 digits masked")
    name: str | None = Field(description="The name the room shows for the caller")
    since: float = Field(description="When the call was answered, or asked for (Unix seconds)")
    muted: bool = Field(description="The caller muted themself (*6)")
    transport: str = Field(description="UDP, TCP or TLS")
    encrypted: bool = Field(description="Media is SRTP")


class LiveCalls(BaseModel):
    calls: list[LiveCall]


@routes.route(
    "GET",
    "/api/v1/phone/calls",
    summary="Phone calls in progress (the operators' console)",
    response=LiveCalls,
    access=Access.MANAGER,
    errors=(401, 403, 404),
    tags=("phone",),
)
async def live_calls(request: web.Request) -> web.Response:
    phone = _gateway(request)
    trunk = phone.trunk
    calls = [
        LiveCall(
            state="ringing",
            room=ringing.room,
            identity=ringing.identity,
            caller=ringing.number,
            name=ringing.name,
            since=round(ringing.since, 3),
            muted=False,
            transport=trunk.transport if trunk else "UDP",
            encrypted=trunk is not None and trunk.srtp == "required",
        )
        for ringing in phone.ringing_calls
    ] + [
        LiveCall(
            state="connected",
            room=call.room.match.room if call.room else None,
            identity=call.room.identity if call.room else None,
            caller=call.caller,
            name=call.room.name if call.room else None,
            since=round(call.since, 3),
            muted=call.muted,
            transport=phone.uas.transport_name(call.dialog.peer),
            encrypted=call.answer.srtp is not None,
        )
        for call in phone.calls.values()
        if call.state in (CallState.ANSWERED, CallState.CONFIRMED)
    ]
    calls.sort(key=lambda c: c.since)
    return json_response(LiveCalls(calls=calls))


class TrunkStatus(BaseModel):
    trunk: str | None = Field(description="The trunk's sip: URI; null when none is set up")
    registers: bool = Field(description="The gateway registers there (PAIRWISE_SIP_TRUNK_REGISTER)")
    state: str | None = Field(
        description="registering, registered, failed (retrying later) or unregistered"
    )
    expires_in: float | None = Field(description="Seconds until the registration lapses")
    next_attempt_in: float | None = Field(description="Seconds until the next REGISTER")
    last_status: int | None = Field(description="The registrar's last answer (0: none came)")
    last_error: str | None
    failures: int = Field(description="Failed attempts in a row")


@routes.route(
    "GET",
    "/api/v1/phone/trunk",
    summary="The trunk and whether the gateway is registered there (the operators' console)",
    response=TrunkStatus,
    access=Access.VIEWER,
    errors=(401, 403, 404),
    tags=("phone",),
)
async def trunk_status(request: web.Request) -> web.Response:
    phone = _gateway(request)
    registration = phone.registration
    if registration is None:
        return json_response(
            TrunkStatus(
                trunk=phone.trunk.uri if phone.trunk else None,
                registers=False,
                state=None,
                expires_in=None,
                next_attempt_in=None,
                last_status=None,
                last_error=None,
                failures=0,
            )
        )
    status, now = registration.status, time.time()
    return json_response(
        TrunkStatus(
            trunk=phone.trunk.uri if phone.trunk else None,
            registers=True,
            state=str(status.state),
            expires_in=round(max(0.0, status.expires_at - now), 1) if status.expires_at else None,
            next_attempt_in=round(max(0.0, status.next_attempt_at - now), 1)
            if status.next_attempt_at
            else None,
            last_status=status.last_status,
            last_error=status.last_error,
            failures=status.failures,
        )
    )


class BlockedSource(BaseModel):
    source: str = Field(description="The address calls and PINs are refused from")
    until: float = Field(description="When it may try again (Unix seconds)")


class RefusedPin(BaseModel):
    at: float = Field(description="When (Unix seconds)")
    source: str = Field(description="The address the SIP request came from")
    reason: str = Field(
        description="wrong_pin, no_pin (none keyed in time), source_locked, over_ceiling, "
        "removed (a removed person's PIN) or room_closed"
    )
    via: str = Field(description="dtmf, request_uri or header")
    room: str | None = Field(description="The room the PIN named; null for a wrong PIN")


class PinGuessing(BaseModel):
    last_hour: dict[str, int] = Field(description="PINs refused in the last hour, by reason")
    since_start: dict[str, int] = Field(description="PINs refused since the gateway started")
    blocked: list[BlockedSource] = Field(description="Sources over their limit of wrong PINs")
    per_source: int = Field(description="Wrong PINs a source may key per window")
    window_seconds: float
    global_per_minute: int = Field(description="Wrong PINs a minute from everyone together")
    global_engaged: bool = Field(description="The global limit refuses PINs from new sources now")
    recent: list[RefusedPin] = Field(description="The last refusals, newest first")


@routes.route(
    "GET",
    "/api/v1/phone/guessing",
    summary="PIN guessing: refused PINs, blocked sources, the global limit (the console)",
    response=PinGuessing,
    access=Access.VIEWER,
    errors=(401, 403, 404),
    tags=("phone",),
)
async def pin_guessing(request: web.Request) -> web.Response:
    phone = _gateway(request)
    now = time.time()
    counts, state = phone.refusals.counts(now), phone.guard.snapshot()
    return json_response(
        PinGuessing(
            last_hour=counts.last_hour,
            since_start=counts.since_start,
            blocked=[
                BlockedSource(source=source, until=round(now + left, 1))
                for source, left in state.blocked
            ],
            per_source=phone.settings.pin_failures_per_source,
            window_seconds=phone.settings.pin_failure_window_seconds,
            global_per_minute=state.ceiling_per_minute,
            global_engaged=state.ceiling_engaged,
            recent=[
                RefusedPin(
                    at=round(r.at, 3),
                    source=r.source,
                    reason=r.reason,
                    via=r.via,
                    room=r.room or None,
                )  # fmt: skip
                for r in counts.recent
            ],
        )
    )


class CallMeRequest(BaseModel):
    number: str = Field(max_length=32, description="The member's number, E.164 (+4930123456)")


class CallMeAnswer(BaseModel):
    status: str = Field(description="calling: the gateway is ringing the number")
    number: str = Field(description="The number being called, masked")


@routes.route(
    "POST",
    "/api/v1/rooms/{room}/phone/call-me",
    summary="Have the phone gateway call a room member's number and bring them in",
    body=CallMeRequest,
    response=CallMeAnswer,
    status=202,
    access=Access.ROOM,
    errors=(401, 403, 404, 422, 429),
    tags=("phone",),
)
async def call_me(request: web.Request) -> web.Response:
    token = member_of(request, ONLY_MEMBERS_CALLED)
    phone = _gateway(request)
    body = await read_body(request, CallMeRequest)
    masked = await phone.call_me(
        request.match_info["room"], token.identity, token.name, str(token.role), body.number
    )
    return json_response(CallMeAnswer(status="calling", number=masked), status=202)


class CallMeCancelled(BaseModel):
    cancelled: bool = Field(
        description="true: the ringing call was cancelled (the trunk got a CANCEL); "
        "false: nothing was ringing (never asked, answered already, or given up)"
    )


@routes.route(
    "DELETE",
    "/api/v1/rooms/{room}/phone/call-me",
    summary="Stop the gateway ringing a member's number (before they answer)",
    response=CallMeCancelled,
    access=Access.ROOM,
    errors=(401, 403, 404),
    tags=("phone",),
)
async def cancel_call_me(request: web.Request) -> web.Response:
    token = member_of(request, ONLY_MEMBERS_CALLED)
    cancelled = _gateway(request).cancel_call_me(request.match_info["room"], token.identity)
    return json_response(CallMeCancelled(cancelled=cancelled))


def mute_announcer(
    signaling: Signaling, media: MediaService
) -> Callable[[str, str, bool], Awaitable[None]]:
    """How a phone caller's *6 reaches the room: as a browser's mute does (the SFU stops
    forwarding their audio and records the choice; the others get `media_state`)."""

    async def announce(room: str, identity: str, muted: bool) -> None:
        controls = await media.control(room, identity, audio=not muted, video=False)
        await signaling.emit_room(room, "media_state", {"identity": identity, **controls})

    return announce
