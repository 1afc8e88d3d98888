"""The phone gateway's seam to a room whose SFU runs in a media worker.

`WorkerRoomAudio` (main process) is `RoomAudio` over the worker channel. Phone → room:
the caller's audio is encoded to Opus once here (`opus_packets`) and each packet goes
to the room's worker, which pushes it into the caller's audio publication there.
Room → phone: the worker taps every other audio publication of the room
(`SfuRoomAudio.tap`, in `install`) and sends the encoded packets here, where they are
decoded into the caller's `RoomMix` (`decoding_sink`). Only phone audio crosses the
channel: about 50 small packets a second per direction per caller.

When the room's worker dies the call stays up: the caller's next packets publish it
again on the room's next worker, and the taps are opened there as soon as the room is
pinned to it (`on_pinned`: by the caller's audio, or a participant's reconnect,
whichever comes first, also when no worker is ready until the replacement starts).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any

import av
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from server.media.forwarding import Publication
from server.media.workers.pool import WorkerHandle, WorkerPool
from server.phone.bridge import RoomMix
from server.phone.sfu_audio import OPUS, SfuRoomAudio, Sink, decoding_sink, opus_packets

if TYPE_CHECKING:
    from server.media.workers.worker import Worker

EXTENSION = "server.phone.worker_audio:install"


class WorkerRoomAudio:
    """`RoomAudio` for the phone gateway, carried by the room's media worker."""

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool
        self._pumps: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._mixes: dict[int, tuple[str, str, RoomMix, dict[str, Sink]]] = {}
        self._ids = itertools.count(1)
        pool.extensions.append(EXTENSION)
        pool.on_message["mix_packet"] = self._packet
        pool.on_message["mix_end"] = self._end
        pool.on_worker_lost.append(self._worker_lost)
        pool.on_pinned.append(self._pinned)

    def publish_track(self, room: str, identity: str, track: MediaStreamTrack) -> None:
        self.unpublish_track(room, identity)
        self._pumps[(room, identity)] = asyncio.create_task(self._pump(room, identity, track))

    def unpublish_track(self, room: str, identity: str) -> None:
        pump = self._pumps.pop((room, identity), None)
        if pump is not None:
            pump.cancel()
            self._pool.send_room(room, "audio_unpublish", {"identity": identity}, pin=False)

    def room_mix(self, room: str, exclude_identity: str) -> RoomMix:
        ident = next(self._ids)

        def closed() -> None:
            if self._mixes.pop(ident, None) is not None:
                self._pool.send_room(room, "mix_close", {"mix": ident}, pin=False)

        mix = RoomMix(on_close=closed)
        self._mixes[ident] = (room, exclude_identity, mix, {})
        if self._pool.worker_of(room) is not None:
            self._open(ident)
        else:
            self._pool.pin(room)  # `_pinned` opens it there (or later, once a worker is ready)
        return mix

    def _open(self, ident: int) -> None:
        room, exclude, _, _ = self._mixes[ident]
        self._pool.send_room(room, "mix_open", {"mix": ident, "exclude": exclude}, pin=False)

    def _pinned(self, room: str) -> None:
        """The room has a new worker: the callers' taps on its audio open there."""
        for ident, (of, _, mix, _) in list(self._mixes.items()):
            if of == room and not mix.closed:
                self._open(ident)

    async def _pump(self, room: str, identity: str, track: MediaStreamTrack) -> None:
        # Each packet names its publisher, so a worker that replaces a lost one
        # publishes the caller again from the next packet on.
        async for payload, pts, level in opus_packets(track):
            args = {"identity": identity, "payload": payload, "pts": pts, "level": level}
            self._pool.send_room(room, "audio_push", args)

    def _packet(self, worker: WorkerHandle, args: dict[str, Any]) -> None:
        entry = self._mixes.get(args["mix"])
        if entry is None:
            return
        _, _, mix, sinks = entry
        identity = args["identity"]
        sink = sinks.get(identity)
        if sink is None:
            sink = sinks[identity] = decoding_sink(mix, identity)
        packet = av.Packet(args["payload"])
        packet.pts = args["pts"]
        codec = RTCRtpCodecParameters(
            mimeType=args["mime"], clockRate=args["rate"], channels=args["channels"]
        )
        sink(codec, packet)

    def _end(self, worker: WorkerHandle, args: dict[str, Any]) -> None:
        entry = self._mixes.get(args["mix"])
        if entry is not None:
            entry[3].pop(args["identity"], None)
            entry[2].remove(args["identity"])

    def _worker_lost(self, rooms: set[str]) -> None:
        """The room's taps were on the lost worker: what they fed the mix is gone (they
        open on the next worker when the room is pinned there, `_pinned`)."""
        for room, _, mix, sinks in self._mixes.values():
            if room in rooms:
                for identity in sinks:
                    mix.remove(identity)
                sinks.clear()


def install(worker: Worker) -> None:
    """The worker's side: callers' publications and the taps on their rooms."""
    audio = SfuRoomAudio(worker.sfu)
    publications: dict[tuple[str, str], Publication] = {}
    taps: dict[int, Any] = {}
    rooms_of_taps: dict[int, str] = {}

    def push(args: dict[str, Any]) -> None:
        room, identity = args["room"], args["identity"]
        media = worker.sfu.rooms.get(room)
        publication = media.publications.get((identity, "audio")) if media else None
        if publication is None:  # the first packet, or the caller left and came back
            publication = audio.open_publication(room, identity)
        publications[(room, identity)] = publication
        publication.push(OPUS, args["payload"], args["pts"], args["level"])

    def unpublish(args: dict[str, Any]) -> None:
        if publications.pop((args["room"], args["identity"]), None) is not None:
            worker.sfu.unpublish(args["room"], args["identity"], "audio")

    def mix_open(args: dict[str, Any]) -> None:
        ident = args["mix"]
        mix_close(args)  # opened twice (the room pinned while its open was on the way): once

        def packet(identity: str, codec: RTCRtpCodecParameters, data: av.Packet) -> None:
            message = {"mix": ident, "identity": identity, "payload": bytes(data)}
            codec_of = {"mime": codec.mimeType, "rate": codec.clockRate, "channels": codec.channels}
            worker.send("mix_packet", {**message, **codec_of, "pts": int(data.pts or 0)})

        def end(identity: str) -> None:
            worker.send("mix_end", {"mix": ident, "identity": identity})

        taps[ident] = audio.tap(args["room"], args["exclude"], packet, end)
        rooms_of_taps[ident] = args["room"]

    def mix_close(args: dict[str, Any]) -> None:
        stop = taps.pop(args["mix"], None)
        rooms_of_taps.pop(args["mix"], None)
        if stop is not None:
            stop()

    def holds(room: str) -> bool:
        return room in rooms_of_taps.values() or any(r == room for r, _ in publications)

    worker.messages.update(
        {
            "audio_push": push,
            "audio_unpublish": unpublish,
            "mix_open": mix_open,
            "mix_close": mix_close,
        }
    )
    worker.holds.append(holds)
