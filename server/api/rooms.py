"""Operator actions on live rooms: who is in a room, and removing someone from it."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from server.api.access import Access, actor_of
from server.api.http import RouteTable, json_response
from server.api.keys import DATABASE, REMOVALS, ROOMS
from server.errors import NotFound
from server.phone.api import PHONE
from server.privacy import audit
from server.signaling.server import SIGNALING

routes = RouteTable()


class Removed(BaseModel):
    room: str
    identity: str
    disconnected: bool
    removed_at: float


class RoomParticipant(BaseModel):
    identity: str
    name: str
    role: str
    presence: str
    media_mode: str
    joined_at: float


class RoomState(BaseModel):
    room: str
    participants: list[RoomParticipant]


@routes.route(
    "GET",
    "/api/v1/rooms/{room}",
    summary="Who is in a room on this node",
    response=RoomState,
    access=Access.MANAGER,
    errors=(404,),
    tags=("rooms",),
)
async def room_state(request: web.Request) -> web.Response:
    room = request.app[ROOMS].get(request.match_info["room"])
    if room is None:
        raise NotFound(f"room {request.match_info['room']!r} is not open on this node")
    people = [RoomParticipant(**p.public()) for p in room.participants.values()]
    return json_response(RoomState(room=room.name, participants=people))


@routes.route(
    "DELETE",
    "/api/v1/rooms/{room}/participants/{identity}",
    summary="Remove a participant: disconnect them; their tokens for this room stop working",
    response=Removed,
    access=Access.MANAGER,
    tags=("rooms",),
)
async def remove_participant(request: web.Request) -> web.Response:
    room, identity = request.match_info["room"], request.match_info["identity"]
    removed = await remove_from_room(request.app, room, identity, actor_of(request))
    return json_response(removed)


async def remove_from_room(
    app: web.Application, room: str, identity: str, actor: str, at: float | None = None
) -> Removed:
    """Remove `identity` from `room`, audited as `actor`: every token they hold for it is
    refused from now on, their personal PIN too, and they are disconnected wherever they
    are (a browser on any node, a phone call). Deactivating a participant does this for
    each of their rooms (server/signin/api.py)."""
    removed_at = await app[REMOVALS].remove(room, identity, at)
    async with app[DATABASE].begin() as conn:
        await audit.record(conn, actor, "participant_remove", identity, {"room": room})
    disconnected = await app[SIGNALING].remove(room, identity)
    phone = app[PHONE]
    if phone is not None and await phone.remove(room, identity):
        disconnected = True
    return Removed(room=room, identity=identity, disconnected=disconnected, removed_at=removed_at)
