"""`LocalRoomAudio`: the phone gateway's `RoomAudio` (server/phone/bridge.py) in-process
with aiortc tracks, without the SFU, for the SIP tests and the phone benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import av
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.phone.bridge import RoomMix


class LocalRoomAudio:
    """`RoomAudio` without an SFU: participants' decoded aiortc tracks, per room.

    Any audio track can be published (a phone caller's `PhoneTrack`, or the track an
    `RTCPeerConnection` received from a browser). `subscribe` gives a copy of one
    participant's track to send elsewhere (another peer connection).
    """

    def __init__(self) -> None:
        self._relay = MediaRelay()
        self._tracks: dict[str, dict[str, MediaStreamTrack]] = {}
        self._mixes: dict[str, list[tuple[str, RoomMix]]] = {}
        self._feeders: dict[tuple[int, str], tuple[asyncio.Task[None], MediaStreamTrack]] = {}
        self.on_published: list[Callable[[str, str], None]] = []

    def publish_track(self, room: str, identity: str, track: MediaStreamTrack) -> None:
        self.unpublish_track(room, identity)
        self._tracks.setdefault(room, {})[identity] = track
        for excluded, mix in self._mixes.get(room, []):
            if excluded != identity:
                self._feed(mix, identity, track)
        for callback in self.on_published:
            callback(room, identity)

    def unpublish_track(self, room: str, identity: str) -> None:
        tracks = self._tracks.get(room, {})
        if tracks.pop(identity, None) is None:
            return
        if not tracks:
            self._tracks.pop(room, None)
        for _, mix in self._mixes.get(room, []):
            self._stop_feeding(mix, identity)
            mix.remove(identity)

    def room_mix(self, room: str, exclude_identity: str) -> RoomMix:
        entry: tuple[str, RoomMix]

        def closed() -> None:
            for identity in list(self._tracks.get(room, {})):
                self._stop_feeding(mix, identity)
            mixes = self._mixes.get(room, [])
            if entry in mixes:
                mixes.remove(entry)
            if not mixes:
                self._mixes.pop(room, None)

        mix = RoomMix(on_close=closed)
        entry = (exclude_identity, mix)
        self._mixes.setdefault(room, []).append(entry)
        for identity, track in self._tracks.get(room, {}).items():
            if identity != exclude_identity:
                self._feed(mix, identity, track)
        return mix

    def subscribe(self, room: str, identity: str) -> MediaStreamTrack | None:
        """A copy of `identity`'s published track, or None if there is none."""
        track = self._tracks.get(room, {}).get(identity)
        return self._relay.subscribe(track, buffered=True) if track is not None else None

    def _feed(self, mix: RoomMix, identity: str, track: MediaStreamTrack) -> None:
        copy = self._relay.subscribe(track, buffered=True)

        async def pump() -> None:
            with contextlib.suppress(MediaStreamError):
                while not mix.closed:
                    frame = await copy.recv()
                    if isinstance(frame, av.AudioFrame):
                        mix.push(identity, frame)

        self._feeders[(id(mix), identity)] = (asyncio.create_task(pump()), copy)

    def _stop_feeding(self, mix: RoomMix, identity: str) -> None:
        found = self._feeders.pop((id(mix), identity), None)
        if found is not None:
            task, copy = found
            task.cancel()
            copy.stop()
