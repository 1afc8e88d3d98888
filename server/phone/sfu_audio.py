"""The phone gateway's seam to the SFU: `RoomAudio` (server/phone/bridge.py) on `Sfu`.

Phone → room: the caller's frames are encoded to Opus once and pushed into an audio
`Publication`, which the SFU forwards like any browser's. Room → phone: the mix taps
every other audio publication in the room (a sink beside the subscribers) and decodes
it once per caller.

The pieces (`opus_packets`, `decoding_sink`, `SfuRoomAudio.open_publication` and
`tap`) also carry a phone leg to a room whose SFU runs in a media worker
(worker_audio.py): the encoding and decoding stay in the main process, the
publication and the taps in the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
from collections.abc import AsyncIterator, Callable

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


# What a tap on a room's audio calls: (publisher, codec, encoded packet).
OnPacket = Callable[[str, RTCRtpCodecParameters, av.Packet], None]
Sink = Callable[[RTCRtpCodecParameters, av.Packet], None]


class SfuRoomAudio:
    """`RoomAudio` for the phone gateway, carried by the SFU."""

    def __init__(self, sfu: Sfu) -> None:
        self._sfu = sfu
        self._pumps: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._taps: dict[str, list[_Tap]] = {}
        sfu.on_publication.append(self._published)

    def publish_track(self, room: str, identity: str, track: MediaStreamTrack) -> None:
        self.unpublish_track(room, identity)
        publication = self.open_publication(room, identity)
        self._pumps[(room, identity)] = asyncio.create_task(self._pump(track, publication))

    def open_publication(self, room: str, identity: str) -> Publication:
        """The caller's Opus audio publication, forwarded to everyone in the room."""
        publication = self._sfu.publish(room, identity, "audio")
        publication.codec = OPUS
        self._sfu.forward_to_room(publication)
        return publication

    def unpublish_track(self, room: str, identity: str) -> None:
        pump = self._pumps.pop((room, identity), None)
        if pump is not None:
            pump.cancel()
            self._sfu.unpublish(room, identity, "audio")

    def room_mix(self, room: str, exclude_identity: str) -> RoomMix:
        decoders: dict[str, Sink] = {}

        def packet(identity: str, codec: RTCRtpCodecParameters, data: av.Packet) -> None:
            sink = decoders.get(identity)
            if sink is None:
                sink = decoders[identity] = decoding_sink(mix, identity)
            sink(codec, data)

        mix = RoomMix()
        mix.on_close = self.tap(room, exclude_identity, packet, mix.remove)
        return mix

    def tap(
        self, room: str, exclude_identity: str, on_packet: OnPacket, on_end: Callable[[str], None]
    ) -> Callable[[], None]:
        """Call `on_packet` with every encoded audio packet of the room's participants but
        `exclude_identity`, including ones who publish later, and `on_end` when one's
        audio ends; returns the function that stops it."""
        tap = _Tap(exclude_identity, on_packet, on_end)
        taps = self._taps.setdefault(room, [])
        taps.append(tap)
        media = self._sfu.rooms.get(room)
        for publication in list(media.publications.values()) if media else []:
            tap.attach(publication)

        def stop() -> None:
            tap.stop()
            with contextlib.suppress(ValueError):
                taps.remove(tap)

        return stop

    def tapped(self, room: str) -> bool:
        """Whether someone listens to the room's audio (a phone caller's mix)."""
        return bool(self._taps.get(room))

    def _published(self, publication: Publication) -> None:
        for tap in list(self._taps.get(publication.room, [])):
            tap.attach(publication)

    @staticmethod
    async def _pump(track: MediaStreamTrack, publication: Publication) -> None:
        async for payload, pts, level in opus_packets(track):
            publication.push(OPUS, payload, pts, level)


class _Tap:
    """Sinks on a room's audio publications, but the excluded participant's."""

    def __init__(self, exclude: str, on_packet: OnPacket, on_end: Callable[[str], None]) -> None:
        self.exclude = exclude
        self.on_packet = on_packet
        self.on_end = on_end
        self.attached: list[tuple[Publication, Sink]] = []
        self.stopped = False

    def attach(self, publication: Publication) -> None:
        if publication.kind != "audio" or publication.identity == self.exclude or self.stopped:
            return
        identity = publication.identity

        def sink(codec: RTCRtpCodecParameters, packet: av.Packet) -> None:
            if not self.stopped:
                self.on_packet(identity, codec, packet)

        def ended() -> None:
            if not self.stopped:
                self.on_end(identity)

        publication.add_sink(sink)
        publication.on_close.append(ended)
        self.attached.append((publication, sink))

    def stop(self) -> None:
        self.stopped = True
        for publication, sink in self.attached:
            publication.remove_sink(sink)
        self.attached.clear()


async def opus_packets(track: MediaStreamTrack) -> AsyncIterator[tuple[bytes, int, int]]:
    """The caller's frames encoded to Opus once: (payload, pts, RFC 6464 level), until the
    track ends or the reader is cancelled."""
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
                yield bytes(packet), int(packet.pts or 0), level


def decoding_sink(mix: RoomMix, identity: str) -> Sink:
    """Decodes one participant's encoded audio into `mix` (a decoder per codec)."""
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
                mix.push(identity, frame)

    return sink
