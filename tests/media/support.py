"""Real aiortc participants for the SFU tests: pre-encoded publishers, recording subscribers.

Publishers send frames encoded once up front (`EncodedTrack`), so nothing in the test
process encodes while the SFU runs: a counting spy on the encoders then proves the
SFU's pass-through. Subscribers either decode with aiortc's stock receivers (what a
browser would do) or tap the encoded frames to compare bytes.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy

from server.media import aiortc_internals, forward_only
from tests.support.participants import SocketParticipant
from tests.support.waiting import eventually

VIDEO_RATE = 90000
AUDIO_RATE = 48000


@dataclass
class Encoded:
    data: bytes
    key: bool


def encode_video(
    frames: int,
    width: int = 160,
    height: int = 120,
    fps: int = 15,
    keyint: int = 45,
    bitrate: int = 150_000,
) -> list[Encoded]:
    """A moving synthetic picture, VP8-encoded once."""
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, fps)
    ctx.framerate = fractions.Fraction(fps, 1)
    ctx.bit_rate = bitrate
    ctx.gop_size = keyint
    ctx.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "kf-max-dist": str(keyint),
    }
    out: list[Encoded] = []
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(frames):
        rgb = np.stack(
            [(xx + 4 * i) % 256, (yy + 2 * i) % 256, np.full_like(xx, (i * 8) % 256)], axis=-1
        ).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out += [Encoded(bytes(p), bool(p.is_keyframe)) for p in ctx.encode(frame)]
    out += [Encoded(bytes(p), bool(p.is_keyframe)) for p in ctx.encode(None)]
    return out


def encode_audio(frames: int) -> list[Encoded]:
    """A 440 Hz tone, Opus-encoded once in 20 ms frames."""
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate, ctx.format, ctx.layout = AUDIO_RATE, "s16", "stereo"
    ctx.bit_rate = 32000
    out: list[Encoded] = []
    t = np.arange(960 * frames) / AUDIO_RATE
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    for i in range(frames):
        chunk = np.repeat(tone[i * 960 : (i + 1) * 960], 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = i * 960
        out += [Encoded(bytes(p), True) for p in ctx.encode(frame)]
    return out


class EncodedTrack(MediaStreamTrack):
    """Sends pre-encoded frames in real time, looping; a keyframe request skips ahead to
    the next keyframe. `silent` stops sending (a frozen publisher)."""

    def __init__(self, kind: str, frames: list[Encoded], fps: float) -> None:
        super().__init__()
        self.kind = kind
        self.frames = frames
        self.interval = 1 / fps
        self.ticks = int((VIDEO_RATE if kind == "video" else AUDIO_RATE) / fps)
        self.time_base = fractions.Fraction(1, VIDEO_RATE if kind == "video" else AUDIO_RATE)
        self.silent = False
        self.sent: list[bytes] = []
        self.keyframe_requests = 0
        self._index = 0
        self._count = 0
        self._started: float | None = None

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        for step in range(1, len(self.frames) + 1):
            candidate = (self._index + step - 1) % len(self.frames)
            if self.frames[candidate].key:
                self._index = candidate
                return

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self._started is None:
            self._started = time.monotonic()
        while True:
            due = self._started + self._count * self.interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            self._count += 1
            if not self.silent:
                break
        frame = self.frames[self._index % len(self.frames)]
        self._index = (self._index + 1) % len(self.frames)
        packet = av.Packet(frame.data)
        packet.pts = self._count * self.ticks
        packet.time_base = self.time_base
        self.sent.append(frame.data)
        return packet


@dataclass
class Received:
    """What one subscriber got from one remote track."""

    kind: str
    mid: str | None = None
    frames: int = 0
    first_size: tuple[int, int] | None = None
    encoded: list[bytes] = field(default_factory=list)
    first_is_key: bool | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class DecodeErrors(logging.Handler):
    """Counts aiortc's 'failed to decode' warnings (the decoder runs in threads)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "failed to decode" in record.getMessage():
            self.count += 1


def client_configuration() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


class MediaClient:
    """A participant with Socket.IO signaling and one aiortc PeerConnection to the SFU.

    `decode=True` reads remote tracks through aiortc's decoders; otherwise it records
    the encoded frames as they arrive.
    """

    def __init__(
        self,
        socket: SocketParticipant,
        decode: bool = True,
        munge_offer: Callable[[str], str] | None = None,
        munge_first_offer: Callable[[str], str] | None = None,
        munge_first_answer: Callable[[str], str] | None = None,
        munge_answer: Callable[[str], str] | None = None,
        answer_late: bool = False,
    ) -> None:
        self.socket = socket
        self.decode = decode
        self.munge_offer = munge_offer
        self.munge_first_offer = munge_first_offer
        self.munge_first_answer = munge_first_answer
        self.munge_answer = munge_answer  # this client's answers to the SFU's offers
        # A slow client: answers the SFU's offers only once its media flows (DTLS is up
        # on both ends, so the SFU's receivers have started while its offer was out).
        self.answer_late = answer_late
        self.offers: list[dict[str, Any]] = []  # the SFU's media_renegotiate payloads
        self.first_exchange: tuple[str, str] | None = None  # (offer sent, answer)
        self.pc = RTCPeerConnection(client_configuration())
        self.tracks: dict[str, EncodedTrack] = {}
        self.received: list[Received] = []
        self.renegotiations = 0
        self.answer_acks: list[Any] = []
        # Called with each encoded frame tapped (decode=False), e.g. to send RTCP back.
        self.on_frame: Callable[[Received, RTCRtpReceiver, Any], None] | None = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        socket.sio.on("media_renegotiate", self._on_renegotiate)
        self.pc.on("track", self._on_track)

    def publish(
        self, video: list[Encoded] | None, audio: list[Encoded] | None, fps: float = 15
    ) -> None:
        for kind, frames, rate in (("audio", audio, 50.0), ("video", video, fps)):
            if frames:
                track = EncodedTrack(kind, frames, rate)
                transceiver = self.pc.addTransceiver(track, direction="sendonly")
                aiortc_internals.on_keyframe_request(transceiver.sender, track.request_keyframe)
                self.tracks[kind] = track

    def publish_screen(self, frames: list[Encoded], fps: float = 10) -> str | None:
        """A second video track, as a browser's screen share; returns nothing until the
        offer is made (its mid is then `self.screen_mid()`)."""
        track = EncodedTrack("video", frames, fps)
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        aiortc_internals.on_keyframe_request(transceiver.sender, track.request_keyframe)
        self.tracks["screen"] = track
        self._screen = transceiver
        return transceiver.mid

    def screen_mid(self) -> str | None:
        screen = getattr(self, "_screen", None)
        return screen.mid if screen is not None else None

    def source_of(self, received: Received) -> str | None:
        """What the SFU's latest offer says a received track shows."""
        for offer in reversed(self.offers):
            info = offer.get("tracks", {}).get(received.mid)
            if info is not None:
                return str(info.get("source"))
        return None

    def receive_only(self) -> None:
        self.pc.addTransceiver("audio", direction="recvonly")

    async def connect(self, event: str = "media_offer", **extra: Any) -> dict[str, Any]:
        async with self._lock:
            await self.pc.setLocalDescription(await self.pc.createOffer())
            sdp = self.pc.localDescription.sdp
            if self.munge_first_offer is not None:
                sdp = self.munge_first_offer(sdp)
            ack = await self.socket.call(event, {"sdp": sdp, "type": "offer", **extra}, timeout=20)
            assert "error" not in ack, ack
            self.first_exchange = (sdp, ack["sdp"])
            answer = ack["sdp"]
            if self.munge_first_answer is not None:
                answer = self.munge_first_answer(answer)
            await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            return dict(ack)

    async def reconnect(self, reason: str = "test") -> dict[str, Any]:
        """A fresh PeerConnection with the same published tracks. The old one is closed
        once the new one is answered (closing it first would tell the SFU that the
        connection died: `connection_closed`)."""
        old = self.pc
        self.pc = RTCPeerConnection(client_configuration())
        self.pc.on("track", self._on_track)
        tracks, self.tracks = self.tracks, {}
        for kind, previous in tracks.items():
            track = EncodedTrack(previous.kind, previous.frames, 1 / previous.interval)
            track.silent = previous.silent
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            aiortc_internals.on_keyframe_request(transceiver.sender, track.request_keyframe)
            self.tracks[kind] = track
        try:
            return await self.connect("media_reconnect", reason=reason)
        finally:
            await old.close()

    async def wait_connected(self, timeout: float = 15) -> None:
        # The state changes inside aiortc callbacks, which signal nothing to wait on.
        await eventually(lambda: self.pc.connectionState == "connected", timeout)

    async def wait_sending(self, frames: int = 10) -> None:
        """Until the connection is up and each published track has sent `frames` frames."""
        await self.wait_connected()
        await eventually(lambda: all(len(t.sent) >= frames for t in self.tracks.values()))

    def of_kind(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.kind == kind]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()
        await self.socket.close()

    async def _on_renegotiate(self, data: dict[str, Any]) -> None:
        async with self._lock:
            if self.pc.signalingState == "closed":
                return
            self.offers.append(data)
            if self.answer_late:
                await self.wait_sending()
            sdp = data["sdp"]
            if self.munge_offer is not None:
                sdp = self.munge_offer(sdp)
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            answer = self.pc.localDescription.sdp
            if self.munge_answer is not None:
                answer = self.munge_answer(answer)
            ack = await self.socket.call(
                "media_answer",
                {
                    "sdp": answer,
                    "type": "answer",
                    "revision": data["revision"],
                },
                timeout=20,
            )
            self.answer_acks.append(ack)
            self.renegotiations += 1

    def _on_track(self, track: MediaStreamTrack) -> None:
        received = Received(track.kind)
        self.received.append(received)
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track:
                received.mid = transceiver.mid
                if not self.decode:
                    aiortc_internals.tap_encoded_frames(
                        transceiver.receiver,
                        lambda codec, frame, r=transceiver.receiver: self._tapped(
                            received, r, frame
                        ),
                    )
        self._tasks.append(asyncio.create_task(self._consume(track, received)))

    def _tapped(self, received: Received, receiver: RTCRtpReceiver, frame: Any) -> None:
        if self.on_frame is not None:
            self.on_frame(received, receiver, frame)
        if received.first_is_key is None:
            received.first_is_key = not frame.data[0] & 1 if received.kind == "video" else True
        received.encoded.append(bytes(frame.data))
        received.frames += 1

    @staticmethod
    async def _consume(track: MediaStreamTrack, received: Received) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    if received.first_size is None:
                        received.first_size = (frame.width, frame.height)
                        received.first_is_key = bool(frame.key_frame)
                    received.frames += 1
                elif isinstance(frame, av.AudioFrame):
                    received.frames += 1
        except MediaStreamError:
            pass
        finally:
            received.ended.set()


def without_abs_send_time(sdp: str) -> str:
    """A subscriber whose own estimate the test sends (aiortc's needs abs-send-time)."""
    return "\r\n".join(line for line in sdp.split("\r\n") if "abs-send-time" not in line)


def send_remb(person: MediaClient, bitrate: int) -> None:
    """Report `bitrate` as the person's receive estimate for its video (a REMB)."""
    for transceiver in person.pc.getTransceivers():
        if transceiver.kind == "video" and transceiver.receiver.track is not None:
            ssrcs = [s.source for s in transceiver.receiver.getSynchronizationSources()]
            if ssrcs:
                aiortc_internals.send_remb(transceiver.receiver, bitrate, ssrcs)


async def hold_remb(person: MediaClient, bitrate: int, seconds: float) -> None:
    """Report `bitrate` every 0.2 s for `seconds`, as a browser's REMB would."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        send_remb(person, bitrate)
        await asyncio.sleep(0.2)


def without_codec(sdp: str, mime_name: str) -> str:
    """An SDP offer as a client that lacks `mime_name` (e.g. "VP8") would see it."""
    drop = {
        line.split(":")[1].split()[0]
        for line in sdp.split("\r\n")
        if line.startswith("a=rtpmap:") and line.split()[1].split("/")[0].upper() == mime_name
    }
    return forward_only.without_payload_types(sdp, drop)


def renumbered(sdp: str, payload_types: dict[int, int], extension_ids: dict[int, int]) -> str:
    """An SDP with its payload types and header-extension ids renumbered, as a browser
    (which numbers them its own way) would have written it."""

    def pt(value: str) -> str:
        return str(payload_types.get(int(value), int(value)))

    out = []
    for line in sdp.split("\r\n"):
        if line.startswith("m=audio") or line.startswith("m=video"):
            parts = line.split()
            line = " ".join(parts[:3] + [pt(p) for p in parts[3:]])
        elif line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
            head, _, rest = line.partition(" ")
            attribute, _, number = head.partition(":")
            rest = re.sub(r"apt=(\d+)", lambda m: f"apt={pt(m.group(1))}", rest)
            line = f"{attribute}:{pt(number)} {rest}".rstrip()
        elif line.startswith("a=extmap:"):
            head, _, rest = line.partition(" ")
            number = int(head.split(":")[1])
            line = f"a=extmap:{extension_ids.get(number, number)} {rest}"
        out.append(line)
    return "\r\n".join(out)


def numbering(sdp: str) -> dict[str, tuple[dict[int, str], dict[int, str]]]:
    """mid → (payload type → codec, extension id → URI) of each audio/video m-line."""
    from aiortc.sdp import SessionDescription

    found = {}
    for media in SessionDescription.parse(sdp).media:
        if media.kind in ("audio", "video") and media.rtp.muxId:
            codecs = {
                c.payloadType: f"{c.mimeType.lower()}/{c.clockRate}/{sorted(c.parameters.items())}"
                for c in media.rtp.codecs
            }
            extensions = {x.id: x.uri for x in media.rtp.headerExtensions}
            found[media.rtp.muxId] = (codecs, extensions)
    return found
