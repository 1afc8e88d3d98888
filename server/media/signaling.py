"""The media events on Socket.IO: negotiation, reconnect and per-participant controls.

docs/protocol-media.md describes them for client authors.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import Field

from server.auth import Grant
from server.errors import RateLimited
from server.media.ice import client_ice_servers
from server.media.peer import MAX_SDP_BYTES
from server.media.service import Connected, MediaService
from server.rooms.model import MediaMode
from server.signaling.ratelimit import TokenBucket
from server.signaling.schemas import Empty, Payload
from server.signaling.server import Ack, Connection, Signaling

log = logging.getLogger("pairwise.media.signaling")

SdpText = Field(min_length=1, max_length=MAX_SDP_BYTES)

# New media connections per socket (media_offer, media_reconnect, media_probe): a client
# probes before joining, offers on joining and on each reconnect, backing off 1, 2, 4,
# 8 s. Each one costs the SFU a PeerConnection (ICE gathering, a DTLS certificate): 50 a
# second from one participant, which the event limit allows, starved everyone else's
# media.
OFFERS_PER_SECOND = 0.5
OFFER_BURST = 5

# room → {"number", "pin"} when the room can be joined by phone, else None.
DialIn = Callable[[str], Awaitable[dict[str, Any] | None]]


VideoSource = Literal["camera", "screen"]
# mid → what the client's video m-line shows
Sources: Any = Field(default_factory=dict, max_length=8)


class MediaOfferIn(Payload):
    sdp: str = SdpText
    type: Literal["offer"]
    sources: dict[str, VideoSource] = Sources


class MediaAnswerIn(Payload):
    sdp: str = SdpText
    type: Literal["answer"]
    revision: int = Field(ge=1)


class MediaReconnectIn(Payload):
    sdp: str = SdpText
    type: Literal["offer"]
    reason: str = Field("client", min_length=1, max_length=200)
    sources: dict[str, VideoSource] = Sources


class MediaControlIn(Payload):
    audio: bool | None = None
    video: bool | None = None
    receive_video: bool | None = None
    screen: bool | None = None


class ViewIn(Payload):
    identity: str = Field(min_length=1, max_length=200)
    source: VideoSource = "camera"
    width: int = Field(ge=0, le=16384)
    height: int = Field(ge=0, le=16384)


class MediaViewIn(Payload):
    views: list[ViewIn] = Field(max_length=64)


class MediaHandlers:
    def __init__(self, signaling: Signaling, media: MediaService, dialin: DialIn | None = None):
        self.signaling = signaling
        self.media = media
        self.dialin = dialin
        self._offers: dict[str, TokenBucket] = {}  # socket id → its new connections
        media.set_notify(self.notify)
        on = signaling.on
        on("media_config", Empty, needs_join=False)(self.config)
        on("media_offer", MediaOfferIn, grant=Grant.SUBSCRIBE)(self.offer)
        on("media_answer", MediaAnswerIn, grant=Grant.SUBSCRIBE)(self.answer)
        on("media_reconnect", MediaReconnectIn, grant=Grant.SUBSCRIBE)(self.reconnect)
        on("media_control", MediaControlIn, grant=Grant.SUBSCRIBE)(self.control)
        on("media_view", MediaViewIn, grant=Grant.SUBSCRIBE)(self.view)
        on("media_close", Empty)(self.close)
        on("media_probe", MediaOfferIn, needs_join=False)(self.probe)
        on("media_probe_close", Empty, needs_join=False)(self.probe_close)
        signaling.on_disconnect(self._disconnected)

    async def config(self, conn: Connection, payload: Empty) -> Ack:
        settings = self.signaling.settings
        ack: dict[str, Any] = {
            "ice_servers": client_ice_servers(settings, conn.identity),
            "ice_transport_policy": "all",
            "bundle_policy": "max-bundle",
            "can_publish": conn.token.can(Grant.PUBLISH),
            "silence_seconds": settings.media_silence_seconds,
        }
        dialin = await self._dialin(conn.room)
        if dialin is not None:
            ack["dialin"] = dialin
        return ack

    async def _dialin(self, room: str) -> dict[str, str] | None:
        """The room's phone number and PIN; media works without it, so a failure omits it."""
        if self.dialin is None:
            return None
        try:
            info = await self.dialin(room)
        except Exception:
            log.exception("dial-in lookup failed", extra={"room": room})
            return None
        if not info or not info.get("number"):
            return None
        return {"number": str(info["number"]), "pin": str(info.get("pin") or "")}

    def _take_offer(self, conn: Connection) -> None:
        bucket = self._offers.setdefault(conn.sid, TokenBucket(OFFERS_PER_SECOND, OFFER_BURST))
        if not bucket.take():
            raise RateLimited("too many new media connections; wait a few seconds")

    async def offer(self, conn: Connection, payload: MediaOfferIn) -> Ack:
        self._take_offer(conn)
        connected = await self.media.connect(
            conn.room,
            conn.identity,
            payload.sdp,
            may_publish=conn.token.can(Grant.PUBLISH),
            sources=dict(payload.sources),
        )
        return self._answer_ack(connected)

    async def answer(self, conn: Connection, payload: MediaAnswerIn) -> Ack:
        await self.media.answer(conn.room, conn.identity, payload.sdp, payload.revision)
        return {"ok": True, "revision": payload.revision}

    async def reconnect(self, conn: Connection, payload: MediaReconnectIn) -> Ack:
        self._take_offer(conn)
        connected = await self.media.connect(
            conn.room,
            conn.identity,
            payload.sdp,
            may_publish=conn.token.can(Grant.PUBLISH),
            reconnect_reason=payload.reason,
            sources=dict(payload.sources),
        )
        return self._answer_ack(connected)

    @staticmethod
    def _answer_ack(connected: Connected) -> Ack:
        ack: dict[str, Any] = {"sdp": connected.sdp, "type": "answer"}
        if connected.refused:
            ack["refused"] = connected.refused
        return ack

    async def control(self, conn: Connection, payload: MediaControlIn) -> Ack:
        if payload.audio or payload.video or payload.screen:
            conn.token.require(Grant.PUBLISH)
        controls = await self.media.control(
            conn.room,
            conn.identity,
            audio=payload.audio,
            video=payload.video,
            receive_video=payload.receive_video,
            screen=payload.screen,
        )
        await self.signaling.emit_room(
            conn.room,
            "media_state",
            {"identity": conn.identity, **controls},
            skip_sid=conn.sid,
        )
        return controls

    async def view(self, conn: Connection, payload: MediaViewIn) -> Ack:
        """The sizes the client shows others' video at: simulcast layers no larger."""
        views = [(v.identity, v.source, v.width, v.height) for v in payload.views]
        return {"matched": await self.media.view(conn.room, conn.identity, views)}

    async def close(self, conn: Connection, payload: Empty) -> Ack:
        """Closing media is the participant's choice: they go to text, so the others stop
        showing their video tile as live."""
        closed = await self.media.disconnect(conn.room, conn.identity)
        participant = self.signaling.registry.participant(conn.room, conn.identity)
        if participant is not None and participant.media_mode in (MediaMode.VIDEO, MediaMode.AUDIO):
            self.signaling.registry.set_media_mode(
                conn.room, conn.identity, MediaMode.TEXT, "media_close", choice=True
            )
        return {"closed": closed}

    async def probe(self, conn: Connection, payload: MediaOfferIn) -> Ack:
        self._take_offer(conn)  # each probe is a PeerConnection too
        owner = f"{conn.room}\n{conn.identity}"
        sdp = await self.media.probes.answer(conn.sid, payload.sdp, owner=owner)
        return {"sdp": sdp, "type": "answer"}

    async def probe_close(self, conn: Connection, payload: Empty) -> Ack:
        await self.media.probes.close(conn.sid)
        return {"closed": True}

    async def _disconnected(self, conn: Connection) -> None:
        self._offers.pop(conn.sid, None)
        await self.media.probes.close(conn.sid)

    async def notify(self, room: str, identity: str, event: str, data: dict[str, Any]) -> None:
        conn = self.signaling.connection_of(room, identity)
        if conn is not None:
            await self.signaling.emit_to(conn.sid, event, data)
