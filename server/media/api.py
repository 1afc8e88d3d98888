"""GET /api/v1/rooms/{room}/stats: what the SFU sees of each participant's media (admin)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from server.api.access import Access
from server.api.http import RouteTable, json_response
from server.api.keys import ROOMS
from server.errors import NotFound
from server.media.room_stats import participant_media
from server.media.service import MediaService
from server.media.sfu import RoomMedia, Sfu

routes = RouteTable()
# The SFU itself, only when it runs in this process (`media_workers` = 0): tests reach in.
SFU = web.AppKey("sfu", Sfu)
MEDIA = web.AppKey("media", MediaService)


class PublishedTrack(BaseModel):
    kind: str
    codec: str | None
    paused: bool
    frames: int
    keyframes: int
    bytes: int
    subscribers: int = Field(description="Subscribers this track is forwarded to")


class ParticipantMedia(BaseModel):
    identity: str
    media_mode: str | None
    connection_state: str = Field(description="new | connecting | connected | failed | none")
    inbound_kbps: float
    outbound_kbps: float
    packets_in: int
    packets_out: int
    bytes_in: int
    bytes_out: int
    loss_percent: float = Field(description="Inbound RTP loss over the last sample")
    rtt_ms: float | None = Field(description="Round trip from RTCP receiver reports")
    forwarded_streams: int = Field(description="Tracks forwarded to this participant")
    transcoded_streams: int
    receive_video: bool
    published: list[PublishedTrack]


class RoomMediaStats(BaseModel):
    room: str
    participants: list[ParticipantMedia]


@routes.route(
    "GET",
    "/api/v1/rooms/{room}/stats",
    summary="Media statistics of a room's participants",
    response=RoomMediaStats,
    access=Access.MANAGER,
    errors=(401, 404),
    tags=("media",),
)
async def room_stats(request: web.Request) -> web.Response:
    name = request.match_info["room"]
    room = request.app[ROOMS].get(name)
    identities = list(room.participants) if room is not None else []
    media = await request.app[MEDIA].room_stats(name, identities)
    if room is None and media is None:
        raise NotFound(f"room {name!r} is not open on this node", code="room_not_found")
    seen = media or {}
    nothing = participant_media(RoomMedia(name), "")
    participants = []
    for identity in identities + [who for who in seen if who not in identities]:
        participant = room.participants.get(identity) if room is not None else None
        participants.append(
            ParticipantMedia(
                identity=identity,
                media_mode=str(participant.media_mode) if participant is not None else None,
                **seen.get(identity, nothing),
            )
        )
    return json_response(RoomMediaStats(room=name, participants=participants))
