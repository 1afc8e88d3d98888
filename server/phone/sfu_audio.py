"""The phone gateway's seam to the SFU: `RoomAudio` (server/phone/bridge.py) on `Sfu`.

Phone → room: the caller's frames are encoded to Opus once and pushed into an audio
`Publication`, which the SFU forwards like any browser's. Room → phone: the mix taps
every other audio publication in the room (a sink beside the subscribers) and decodes
it once per caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging

import av
from aiortc.codecs import get_decoder
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import compute_audio_level_dbov

from server.media.forwarding import Publication
from server.media.sfu import Sfu
from server.phone.bridge import RoomMix

log = logging.getLogger("pairwise.phone.sfu_audio")

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)


class SfuRoomAudio:
    """`RoomAudio` for the phone gateway, carried by the SFU."""

    def __init__(self, sfu: Sfu) -> None:
        self._sfu = sfu
        self._pumps: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._mixes: dict[str, list[tuple[str, RoomMix]]] = {}
        sfu.on_publication.append(self._published)

    def publish_track(self, room: str, identity: str, track: MediaStreamTrack) -> None:
        self.unpublish_track(room, identity)
        publication = self._sfu.publish(room, identity, "audio")
        publication.codec = OPUS
        self._pumps[(room, identity)] = asyncio.create_task(self._pump(track, publication))
        self._sfu.forward_to_room(publication)

    def unpublish_track(self, room: str, identity: str) -> None:
        pump = self._pumps.pop((room, identity), None)
        if pump is not None:
            pump.cancel()
            self._sfu.unpublish(room, identity, "audio")

    def room_mix(self, room: str, exclude_identity: str) -> RoomMix:
        entry: tuple[str, RoomMix]
        attached: list[tuple[Publication, object]] = []

        def closed() -> None:
            for publication, sink in attached:
                with contextlib.suppress(ValueError):
                    publication.sinks.remove(sink)  # type: ignore[arg-type]
            with contextlib.suppress(ValueError):
                self._mixes.get(room, []).remove(entry)

        mix = RoomMix(on_close=closed)
        entry = (exclude_identity, mix)
        self._mixes.setdefault(room, []).append(entry)
        media = self._sfu.rooms.get(room)
        for publication in list(media.publications.values()) if media else []:
            if publication.kind == "audio" and publication.identity != exclude_identity:
                attached.append((publication, self._attach(publication, mix)))
        return mix

    def _published(self, publication: Publication) -> None:
        if publication.kind != "audio":
            return
        for excluded, mix in self._mixes.get(publication.room, []):
            if publication.identity != excluded and not mix.closed:
                self._attach(publication, mix)

    @staticmethod
    def _attach(publication: Publication, mix: RoomMix) -> object:
        decoders: dict[str, Decoder] = {}

        def sink(codec: RTCRtpCodecParameters, packet: av.Packet) -> None:
            if mix.closed:
                return
            decoder = decoders.get(codec.mimeType)
            if decoder is None:
                decoder = decoders[codec.mimeType] = get_decoder(codec)
            try:
                frames = decoder.decode(JitterFrame(bytes(packet), int(packet.pts or 0)))
            except av.FFmpegError:
                return
            for frame in frames:
                if isinstance(frame, av.AudioFrame):
                    mix.push(publication.identity, frame)

        publication.sinks.append(sink)
        publication.on_close.append(lambda: mix.remove(publication.identity))
        return sink

    @staticmethod
    async def _pump(track: MediaStreamTrack, publication: Publication) -> None:
        encoder = av.CodecContext.create("libopus", "w")
        encoder.sample_rate, encoder.format, encoder.layout = 48000, "s16", "mono"
        encoder.bit_rate = 32000
        encoder.time_base = fractions.Fraction(1, 48000)
        pts = 0
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                frame.pts, frame.time_base = pts, fractions.Fraction(1, 48000)
                pts += frame.samples
                # The level a browser would send (RFC 6464): a caller can be the speaker.
                level = -compute_audio_level_dbov(frame)
                for packet in encoder.encode(frame):
                    publication.push(OPUS, bytes(packet), int(packet.pts or 0), level)
