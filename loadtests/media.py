"""Media participants: aiortc peers that publish pre-encoded video and audio to the SFU and
count what they receive, without encoding or decoding anything during the run.

Publishing: a short loop of VP8 frames (one keyframe every loop) and Opus packets is
encoded once per process; tracks hand those packets to aiortc, which only packetizes them.
Receiving: forwarded tracks are tapped before the decoder (server/media/aiortc_internals/,
the one package that touches aiortc internals), so a subscriber costs SRTP and depacketizing.

The protocol is docs/protocol-media.md: `media_config`, then the client offers
(`media_offer`) and the SFU answers; from then on the SFU offers (`media_renegotiate`) and
the client answers (`media_answer`).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import fractions
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from loadtests.scenario import Media, Video
from server.media.aiortc_internals import tap_encoded_frames

if TYPE_CHECKING:
    from loadtests.participant import Measurements, Participant

VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
AUDIO_PTIME = 0.02
LOOP_SECONDS = 2


# --- pre-encoded sources ----------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """A loop of encoded frames: payloads, clock rate and ticks per frame."""

    kind: str
    payloads: tuple[bytes, ...]
    clock_rate: int
    ticks: int

    @property
    def interval(self) -> float:
        return self.ticks / self.clock_rate


_cache: dict[Any, Encoded] = {}


def encoded_video(video: Video) -> Encoded:
    """VP8 frames of a moving test pattern at the scenario's size, rate and bitrate."""
    key = ("video", video.width, video.height, video.fps, video.bitrate_kbps)
    if key not in _cache:
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height, codec.pix_fmt = video.width, video.height, "yuv420p"
        codec.bit_rate = video.bitrate_kbps * 1000
        codec.framerate = fractions.Fraction(video.fps, 1)
        codec.time_base = fractions.Fraction(1, video.fps)
        frames = video.fps * LOOP_SECONDS
        codec.gop_size = frames  # one keyframe per loop: the loop restarts cleanly
        codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        xs = np.arange(video.width, dtype=np.uint16)[None, :]
        ys = np.arange(video.height, dtype=np.uint16)[:, None]
        payloads: list[bytes] = []
        for i in range(frames):
            rgb = np.empty((video.height, video.width, 3), np.uint8)
            rgb[:, :, 0] = (xs + i * 8) % 256
            rgb[:, :, 1] = (ys * 2 + i * 4) % 256
            rgb[:, :, 2] = ((xs + ys) // 2 + i * 2) % 256
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            payloads += [bytes(p) for p in codec.encode(frame)]
        payloads += [bytes(p) for p in codec.encode(None)]
        _cache[key] = Encoded("video", tuple(payloads), VIDEO_CLOCK, VIDEO_CLOCK // video.fps)
    return _cache[key]


def encoded_audio() -> Encoded:
    """Opus packets (20 ms) of a quiet tone."""
    if "audio" not in _cache:
        codec = av.CodecContext.create("libopus", "w")
        codec.sample_rate, codec.layout, codec.format = AUDIO_RATE, "stereo", "s16"
        codec.bit_rate = 32_000
        samples = int(AUDIO_RATE * AUDIO_PTIME)
        t = np.arange(AUDIO_RATE * LOOP_SECONDS) / AUDIO_RATE
        tone = (np.sin(2 * np.pi * 440 * t) * 3000).astype(np.int16)
        payloads: list[bytes] = []
        for i in range(0, len(tone), samples):
            chunk = np.repeat(tone[i : i + samples], 2).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
            frame.sample_rate, frame.pts = AUDIO_RATE, i
            payloads += [bytes(p) for p in codec.encode(frame)]
        payloads += [bytes(p) for p in codec.encode(None)]
        _cache["audio"] = Encoded("audio", tuple(payloads), AUDIO_RATE, samples)
    return _cache["audio"]


def prepare(settings: Media) -> None:
    """Encode the loops before the run, so the first publishers do not stall the loop."""
    encoded_audio()
    if settings.video is not None:
        encoded_video(settings.video)


# Appended to every video frame: which publisher, which frame. The SFU forwards encoded
# frames untouched, so a subscriber knows exactly what it got from whom, without decoding.
TRAILER = struct.Struct("!4sII")
MAGIC = b"PWlt"


def read_trailer(data: bytes) -> tuple[int, int] | None:
    """(publisher number, frame number) of a frame from a load-test publisher, else None."""
    if len(data) < TRAILER.size:
        return None
    magic, publisher, seq = TRAILER.unpack_from(data, len(data) - TRAILER.size)
    return (publisher, seq) if magic == MAGIC else None


class LoopTrack(MediaStreamTrack):
    """Plays an encoded loop in real time as `av.Packet`s; `silence()` stops it on purpose.

    Video frames carry a trailer (publisher number, frame number)."""

    def __init__(self, source: Encoded, on_sent: Any, publisher: int):
        super().__init__()
        self.kind = source.kind
        self._source = source
        self._on_sent = on_sent
        self._publisher = publisher
        self._index = 0
        self._start: float | None = None
        self._silent = asyncio.Event()

    def silence(self) -> None:
        self._silent.set()

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.perf_counter()
        due = self._start + self._index * self._source.interval
        delay = due - time.perf_counter()
        if self._silent.is_set() or delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._silent.wait(), max(delay, 0))
            if self._silent.is_set():
                await asyncio.Event().wait()  # a frozen camera: nothing more, ever
        payload = self._source.payloads[self._index % len(self._source.payloads)]
        if self.kind == "video":
            payload += TRAILER.pack(MAGIC, self._publisher, self._index)
        packet = av.Packet(payload)
        packet.pts = self._index * self._source.ticks
        packet.time_base = fractions.Fraction(1, self._source.clock_rate)
        self._index += 1
        self._on_sent(self.kind)
        return packet


# --- accounting ---------------------------------------------------------------------------


class MediaLedger:
    """Every publisher's video frames by number, with their send times."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}  # identity → publisher number
        self.identities: list[str] = []
        self.sent_at: list[list[float]] = []  # by publisher number, by frame number
        self.room_of: dict[str, str] = {}
        self.end_at: float | None = None  # the run's media end: accounting stops here

    def register(self, identity: str, room: str) -> int:
        if identity not in self.numbers:
            self.numbers[identity] = len(self.identities)
            self.identities.append(identity)
            self.sent_at.append([])
        self.room_of[identity] = room
        return self.numbers[identity]

    def publishers(self, room: str, besides: str) -> list[int]:
        return [self.numbers[i] for i, r in self.room_of.items() if r == room and i != besides]

    def last_sent_before(self, publisher: int, moment: float) -> int:
        """How many frames the publisher had sent by `moment`."""
        return bisect.bisect_right(self.sent_at[publisher], moment)


# --- the peer ------------------------------------------------------------------------------


class MediaPeer:
    """The media side of one participant: publish (maybe fail on purpose) and subscribe."""

    def __init__(self, participant: Participant, settings: Media, measurements: Measurements):
        self.p = participant
        self.settings = settings
        self.m = measurements
        self.ledger: MediaLedger = measurements.media_ledger
        self.pc: RTCPeerConnection | None = None
        self.tracks: list[LoopTrack] = []
        self.started_at = 0.0
        self.number = -1
        self.received: dict[int, set[int]] = {}  # publisher number → frame numbers
        self.first_video_at: float | None = None
        self.stepped_down: list[tuple[float, str, str]] = []
        self._fail_task: asyncio.Task[None] | None = None
        self._fail_started: float | None = None
        self._fell_back = False  # stepped down since failing on purpose
        # The SFU may send its first offer before our offer's ack arrives: hold it until
        # our answer is applied, and apply offers one at a time.
        self._answered = asyncio.Event()
        self._negotiating = asyncio.Lock()
        sio = participant.sio
        sio.on("media_renegotiate", self._renegotiate)
        sio.on("media_failed", self._failed)
        sio.on("media_mode", self._media_mode)

    async def start(self) -> None:
        """Ask for the ICE configuration, offer our tracks, apply the SFU's answer."""
        spec = self.p.spec
        self.started_at = time.perf_counter()
        config = await self._call("media_config", None)
        servers = [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in config.get("ice_servers", [])
        ]
        # Explicit, even when empty: aiortc otherwise falls back to a public STUN server.
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        self.number = self.ledger.register(spec.identity, spec.room)
        sources = [encoded_audio()] if self.settings.audio else []
        if spec.media_mode == "video" and self.settings.video is not None:
            sources.append(encoded_video(self.settings.video))
        for source in sources:
            track = LoopTrack(source, self._sent, self.number)
            self.tracks.append(track)
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            mime = "video/vp8" if source.kind == "video" else "audio/opus"
            codecs = [
                c
                for c in RTCRtpSender.getCapabilities(source.kind).codecs
                if c.mimeType.lower() == mime
            ]
            transceiver.setCodecPreferences(codecs)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self._call(
            "media_offer", {"sdp": self.pc.localDescription.sdp, "type": "offer"}
        )
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        self._answered.set()
        if spec.fails_media:
            self._fail_task = asyncio.create_task(self._fail_later())

    async def close(self) -> None:
        if self.pc is None:
            return
        pc, self.pc = self.pc, None
        if self._fail_task is not None:
            self._fail_task.cancel()
        self._account()
        await pc.close()

    # -- events --

    async def _renegotiate(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        try:
            await asyncio.wait_for(self._answered.wait(), 15)
            async with self._negotiating:
                pc = self.pc
                if pc is None:
                    return
                await pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "offer"))
                await pc.setLocalDescription(await pc.createAnswer())
                sdp = pc.localDescription.sdp
            answer = {"sdp": sdp, "type": "answer", "revision": data["revision"]}
            await self._call("media_answer", answer)
        except Exception as exc:  # the report must say why media broke
            self.m.error("media_renegotiation_failed", f"{self.p.spec.identity}: {exc!r}")

    def _on_track(self, track: MediaStreamTrack) -> None:
        assert self.pc is not None
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track:
                kind = transceiver.kind
                if kind == "video":
                    tap_encoded_frames(transceiver.receiver, self._got_video)
                else:
                    tap_encoded_frames(transceiver.receiver, lambda codec, frame: None)

    def _got_video(self, codec: Any, frame: Any) -> None:
        mark = read_trailer(bytes(frame.data))
        if mark is None:
            self.m.error("media_unknown_frame", self.p.spec.identity)
            return
        publisher, seq = mark
        now = time.perf_counter()
        sent = self.ledger.sent_at[publisher]
        if self.first_video_at is None:
            self.first_video_at = now
            # From when both ends were ready: our media start, or the publisher's first frame.
            began = max(self.started_at, sent[0] if sent else now)
            self.m.first_frame_ms.append((now - began) * 1000)
        seen = self.received.setdefault(publisher, set())
        if seq in seen:
            self.m.media_duplicates += 1
            return
        seen.add(seq)
        if seq < len(sent):
            self.m.media_latency_ms.append((now - sent[seq]) * 1000)

    def _sent(self, kind: str) -> None:
        if kind == "video":
            self.ledger.sent_at[self.number].append(time.perf_counter())
            self.m.media_frames_sent += 1

    def _on_state(self) -> None:
        if self.pc is not None and self.pc.connectionState == "failed":
            self.m.error("media_ice_failed", self.p.spec.identity)

    async def _failed(self, data: Any) -> None:
        reason = data.get("reason") if isinstance(data, dict) else data
        if not self.p.spec.fails_media:
            self.m.error("media_failed", f"{self.p.spec.identity}: {reason}")

    async def _media_mode(self, data: Any) -> None:
        """The server moving someone down the fallback ladder: expected for the failing share,
        an error for anyone else."""
        if not isinstance(data, dict) or data.get("identity") != self.p.spec.identity:
            return
        mode, reason = str(data.get("mode")), str(data.get("reason"))
        self.stepped_down.append((self.m.now(), mode, reason))
        if self.p.spec.fails_media and self._fail_started is not None:
            # Time to the first step down after the failure; the ladder may take a second
            # (video → audio → text when the audio's silence is noticed a tick later).
            if not self._fell_back:
                self._fell_back = True
                self.m.fallback_ms.append((time.perf_counter() - self._fail_started) * 1000)
        elif mode in ("audio", "text") and data.get("previous") in ("video", "audio"):
            self.m.error("media_stepped_down", f"{self.p.spec.identity}: {mode} ({reason})")

    # -- helpers --

    async def _fail_later(self) -> None:
        await asyncio.sleep(self.settings.fail_after_s)
        self._fail_started = time.perf_counter()
        for track in self.tracks:
            track.silence()

    def _account(self) -> None:
        """Per publisher in the room: from the first frame we got from it to the last one it
        sent half a second before the run's end, which frame numbers are missing."""
        end = min(self.ledger.end_at or time.perf_counter(), time.perf_counter()) - 0.5
        for publisher in self.ledger.publishers(self.p.spec.room, self.p.spec.identity):
            upto = self.ledger.last_sent_before(publisher, end)
            seen = self.received.get(publisher)
            if not seen:
                # Nothing at all from a publisher that sent: all of it is lost, counted
                # from a generous 5 s after our start (negotiation is not loss).
                since = self.ledger.last_sent_before(publisher, self.started_at + 5)
                if upto > since:
                    self.m.media_frames_expected += upto - since
                    self.m.error(
                        "media_no_frames",
                        f"{self.p.spec.identity} from {self.ledger.identities[publisher]}",
                    )
                continue
            first = min(seen)
            if upto > first:
                self.m.media_frames_expected += upto - first
                self.m.media_frames_received += sum(1 for seq in seen if first <= seq < upto)

    async def _call(self, event: str, data: Any) -> dict[str, Any]:
        ack = await self.p.sio.call(event, data, timeout=15)
        if not isinstance(ack, dict) or "error" in ack:
            raise MediaError(event, ack)
        return ack


class MediaError(Exception):
    def __init__(self, event: str, ack: Any):
        super().__init__(f"{event}: {ack!r}"[:300])
        self.event = event
