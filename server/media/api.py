"""GET /api/v1/rooms/{room}/stats: what the SFU sees of each participant's media (admin)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from server.api.access import Access
from server.api.http import RouteTable, json_response
from server.api.keys import ROOMS
from server.errors import NotFound
from server.media.sfu import Sfu

routes = RouteTable()
SFU = web.AppKey("sfu", Sfu)


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
    media = request.app[SFU].rooms.get(name)
    if room is None and media is None:
        raise NotFound(f"room {name!r} is not open on this node", code="room_not_found")
    identities = list(room.participants) if room is not None else []
    if media is not None:
        identities += [who for who in media.peers if who not in identities]
    participants = []
    for identity in identities:
        participant = room.participants.get(identity) if room is not None else None
        peer = media.peers.get(identity) if media is not None else None
        controls = media.controls.get(identity) if media is not None else None
        quality = peer.quality if peer is not None else None
        outgoing = list(peer.outgoing.values()) if peer is not None else []
        published = media.publications_of(identity) if media is not None else []
        participants.append(
            ParticipantMedia(
                identity=identity,
                media_mode=str(participant.media_mode) if participant is not None else None,
                connection_state=peer.state if peer is not None else "none",
                inbound_kbps=round(quality.inbound_kbps, 1) if quality else 0.0,
                outbound_kbps=round(quality.outbound_kbps, 1) if quality else 0.0,
                packets_in=quality.packets_in if quality else 0,
                packets_out=quality.packets_out if quality else 0,
                bytes_in=quality.bytes_in if quality else 0,
                bytes_out=quality.bytes_out if quality else 0,
                loss_percent=round(quality.loss_percent, 2) if quality else 0.0,
                rtt_ms=round(quality.rtt_ms, 1) if quality and quality.rtt_ms is not None else None,
                forwarded_streams=sum(1 for o in outgoing if o.negotiated),
                transcoded_streams=sum(1 for o in outgoing if o.track.transcoder is not None),
                receive_video=controls.receive_video if controls is not None else True,
                published=[
                    PublishedTrack(
                        kind=p.kind,
                        codec=p.codec.mimeType if p.codec else None,
                        paused=p.paused,
                        frames=p.frames,
                        keyframes=p.keyframes,
                        bytes=p.bytes,
                        subscribers=len(p.subscribers),
                    )
                    for p in published
                ],
            )
        )
    return json_response(RoomMediaStats(room=name, participants=participants))
