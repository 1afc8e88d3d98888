"""The audio bridge between a phone leg and a room.

Phone → room: `PhoneTrack` turns the caller's 8 kHz G.711 audio into 20 ms 48 kHz
mono frames, resampled once; whoever carries the room's media encodes it to Opus
once and forwards it like any participant's track.

Room → phone: `RoomMix` takes decoded frames of everyone else in the room, mixes
them at 8 kHz with a limiter, and the call encodes that to G.711 at the caller's
packet time.

The seam to the SFU is `RoomAudio` (three methods): `SfuRoomAudio` (sfu_audio.py)
carries it on the SFU; tests/support/room_audio.py has one without an SFU.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from collections.abc import Callable
from typing import Protocol

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.phone.g711 import Samples

log = logging.getLogger("pairwise.phone.bridge")

PHONE_RATE = 8000
ROOM_RATE = 48000
ROOM_FRAME_SAMPLES = 960  # 20 ms at 48 kHz: what an Opus encoder takes
LIMIT = 0.89 * 32767  # about -1 dBFS
RELEASE_PER_SECOND = 2.0  # limiter gain recovery: from half to full in 0.25 s
MAX_QUEUED_FRAMES = 25  # 500 ms of phone audio toward the room, then the oldest goes
PREFILL_SAMPLES = PHONE_RATE * 60 // 1000  # absorbs the mismatch of 20 ms frames vs 30 ms reads
MAX_BUFFERED_SAMPLES = PHONE_RATE * 200 // 1000
# A queue that never runs below this much over a second is standing delay, not jitter
# cover (arrival bursts come and go within that): it is cut to the prefill.
STANDING_EXCESS_SAMPLES = PHONE_RATE * 20 // 1000
STANDING_WINDOW_READS = 40


class RoomAudio(Protocol):
    """What the phone gateway needs from whatever carries the room's media (the SFU).

    - `publish_track`: phone → room. Forward `track` (20 ms, 48 kHz, s16 mono
      `av.AudioFrame`s) to the room's other participants as `identity`'s audio,
      encoding it to Opus once for all of them.
    - `unpublish_track`: the caller left; stop forwarding.
    - `room_mix`: room → phone. Return a `RoomMix` and keep calling its `push` with
      the decoded audio of every participant in `room` except `exclude_identity`
      (including ones who join later), and `remove` when one leaves; stop when the
      mix is closed (`RoomMix.on_close`).
    """

    def publish_track(self, room: str, identity: str, track: MediaStreamTrack) -> None: ...

    def unpublish_track(self, room: str, identity: str) -> None: ...

    def room_mix(self, room: str, exclude_identity: str) -> RoomMix: ...


class PhoneTrack(MediaStreamTrack):
    """The caller's voice as a room track."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._resampler = av.AudioResampler(
            format="s16", layout="mono", rate=ROOM_RATE, frame_size=ROOM_FRAME_SAMPLES
        )
        self._queue: asyncio.Queue[av.AudioFrame | None] = asyncio.Queue()
        self._pts_in = 0
        self._pts_out = 0
        self.frames_out = 0

    def push(self, samples: Samples) -> None:
        """Add decoded 8 kHz phone audio (any packet time)."""
        if self.readyState != "live":
            return
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = PHONE_RATE
        frame.pts = self._pts_in
        frame.time_base = fractions.Fraction(1, PHONE_RATE)
        self._pts_in += len(samples)
        for out in self._resampler.resample(frame):
            while self._queue.qsize() >= MAX_QUEUED_FRAMES:
                self._queue.get_nowait()
            self._queue.put_nowait(out)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            raise MediaStreamError
        frame.pts = self._pts_out
        frame.time_base = fractions.Fraction(1, ROOM_RATE)
        self._pts_out += frame.samples
        self.frames_out += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self._queue.put_nowait(None)


class _Source:
    """One participant's audio inside a mix: resampled to 8 kHz and buffered."""

    def __init__(self) -> None:
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=PHONE_RATE)
        self.chunks: list[Samples] = []
        self.buffered = 0
        self.playing = False
        self._lowest = MAX_BUFFERED_SAMPLES  # the least left after a read, this window
        self._reads = 0

    def add(self, samples: Samples) -> None:
        self.chunks.append(samples)
        self.buffered += len(samples)
        while self.buffered > MAX_BUFFERED_SAMPLES:  # a late reader must not grow latency
            self.buffered -= len(self.chunks.pop(0))

    def take(self, count: int) -> Samples | None:
        if not self.playing and self.buffered < PREFILL_SAMPLES:
            return None
        self.playing = self.buffered >= count
        if not self.playing:
            return None  # ran dry: wait for a new prefill instead of crackling
        data = np.concatenate(self.chunks)
        left = data[count:]
        self._lowest = min(self._lowest, len(left))
        self._reads += 1
        if self._reads >= STANDING_WINDOW_READS:
            # Never below prefill + excess for the whole window: the queue only delays.
            standing = self._lowest - PREFILL_SAMPLES
            if standing > STANDING_EXCESS_SAMPLES:
                left = left[standing:]
            self._lowest, self._reads = MAX_BUFFERED_SAMPLES, 0
        self.chunks = [left] if len(left) else []
        self.buffered = len(left)
        return data[:count]


class RoomMix:
    """The room as one caller hears it: every other participant, mixed at 8 kHz."""

    def __init__(self, on_close: Callable[[], None] | None = None) -> None:
        self._sources: dict[str, _Source] = {}
        self._gain = 1.0
        self.on_close = on_close
        self.closed = False

    def push(self, source: str, frame: av.AudioFrame) -> None:
        """Add decoded audio of `source` (any rate, format and layout)."""
        if self.closed:
            return
        state = self._sources.setdefault(source, _Source())
        for out in state.resampler.resample(frame):
            state.add(out.to_ndarray().reshape(-1).astype(np.int16, copy=False))

    def remove(self, source: str) -> None:
        self._sources.pop(source, None)

    @property
    def sources(self) -> list[str]:
        return list(self._sources)

    def read(self, count: int) -> Samples:
        """`count` samples of the mix; silence where nobody speaks."""
        mixed = np.zeros(count, dtype=np.int32)
        for state in self._sources.values():
            chunk = state.take(count)
            if chunk is not None:
                mixed += chunk
        return self._limit(mixed)

    def _limit(self, mixed: np.ndarray) -> Samples:
        # Instant attack, slow release: two loud speakers are turned down together
        # instead of clipping, and the gain comes back over about half a second.
        peak = int(np.abs(mixed).max()) if len(mixed) else 0
        wanted = min(1.0, LIMIT / peak) if peak else 1.0
        release = RELEASE_PER_SECOND * len(mixed) / PHONE_RATE
        self._gain = wanted if wanted < self._gain else min(wanted, self._gain + release)
        return np.clip(mixed * self._gain, -32768, 32767).astype(np.int16)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._sources.clear()
        if self.on_close is not None:
            self.on_close()
