"""A phone caller and a WebRTC participant in one room, hearing each other.

The WebRTC participant is a real aiortc peer connection publishing an 850 Hz tone;
its received track goes into the room through `LocalRoomAudio` (where the SFU will
take over). The caller is sipp for signalling, with the test's own RTP socket for
media so the audio both ways can be decoded and checked by FFT: the caller must
hear 850 Hz, the participant must hear the caller's 1000 Hz.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.config import Settings
from server.media.workers.pool import WorkerPool
from server.phone import g711
from server.phone.rtp import RtpPacket
from server.phone.worker_audio import WorkerRoomAudio
from server.rooms.events import EventBus
from server.rooms.model import MediaMode
from server.rooms.registry import RoomRegistry
from tests.media.support import client_configuration
from tests.sip.conftest import Phone, PhoneFactory, UdpPeer, eventually
from tests.sip.media import ToneTrack, dominant_frequency, g711_packets, tone

pytestmark = [pytest.mark.slow, pytest.mark.sip]

ROOM = "mentoring-e2e"
PARTICIPANT_TONE = 850.0
CALLER_TONE = 1000.0
ONE_SECOND_8K = 8000
ONE_SECOND_48K = 48000


async def collect_track(track: MediaStreamTrack, into: list[np.ndarray]) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            assert isinstance(frame, av.AudioFrame)
            samples = frame.to_ndarray().reshape(-1)
            channels = len(frame.layout.channels)
            into.append(samples[::channels])  # first channel of interleaved s16


async def play_caller_voice(peer: UdpPeer, port: int) -> None:
    """The caller speaks: 1000 Hz PCMA in 30 ms packets, paced in real time."""
    for packet in g711_packets("PCMA", tone(CALLER_TONE, 20.0), 8, ssrc=4242, ptime_ms=30):
        peer.send(packet, port)
        await asyncio.sleep(0.03)


def caller_heard(peer: UdpPeer) -> np.ndarray:
    samples = []
    while not peer.received.empty():
        data, _ = peer.received.get_nowait()
        packet = RtpPacket.parse(data)
        if packet.payload_type == 8:
            samples.append(g711.decode("PCMA", packet.payload))
    return np.concatenate(samples) if samples else np.zeros(0, dtype=np.int16)


async def test_caller_and_webrtc_participant_hear_each_other(
    phone: Phone, udp_peer: UdpPeer
) -> None:
    pin = await phone.pins.ensure_room_pin(ROOM)
    sipp = phone.start_sipp(
        "call_wait_for_bye.xml", pin, args=("-set", "rtpport", str(udp_peer.port))
    )
    call = await phone.confirmed_call()
    joined = await eventually(lambda: call.room)
    assert call.answer.codec == "PCMA" and call.answer.ptime_ms == 30
    voice = asyncio.create_task(play_caller_voice(udp_peer, call.local_rtp_port))

    room_side, participant = RTCPeerConnection(), RTCPeerConnection()
    heard_by_participant: list[np.ndarray] = []
    tasks: list[asyncio.Task[None]] = []

    @room_side.on("track")
    def published(track: MediaStreamTrack) -> None:
        phone.room_audio.publish_track(ROOM, "alice", track)

    @participant.on("track")
    def subscribed(track: MediaStreamTrack) -> None:
        tasks.append(asyncio.create_task(collect_track(track, heard_by_participant)))

    try:
        participant.addTrack(ToneTrack(PARTICIPANT_TONE))
        caller_track = phone.room_audio.subscribe(ROOM, joined.identity)
        assert caller_track is not None
        room_side.addTrack(caller_track)
        await participant.setLocalDescription(await participant.createOffer())
        await room_side.setRemoteDescription(participant.localDescription)
        await room_side.setLocalDescription(await room_side.createAnswer())
        await participant.setRemoteDescription(room_side.localDescription)

        # Both directions carry a second of audio past the joining tones.
        await eventually(
            lambda: sum(map(len, heard_by_participant)) > 2 * ONE_SECOND_48K, timeout=20
        )
        await eventually(lambda: call.mix is not None and "alice" in call.mix.sources)
        while not udp_peer.received.empty():  # drop what was sent before alice was mixed
            udp_peer.received.get_nowait()
        await eventually(lambda: udp_peer.received.qsize() > 2 * ONE_SECOND_8K // 240)
        heard_by_caller = caller_heard(udp_peer)
    finally:
        voice.cancel()
        await phone.gateway.hang_up(call.call_id)
        await participant.close()
        await room_side.close()
        for task in tasks:
            task.cancel()

    result = await sipp
    assert result.returncode == 0, result.errors
    assert abs(dominant_frequency(heard_by_caller[-ONE_SECOND_8K:], 8000) - PARTICIPANT_TONE) < 10
    participant_audio = np.concatenate(heard_by_participant)[-ONE_SECOND_48K:]
    assert abs(dominant_frequency(participant_audio, 48000) - CALLER_TONE) < 10
    assert phone.gateway.ended_calls[-1].end_reason == "removed"


async def phone_with_a_media_worker(
    make_phone: PhoneFactory, make_settings: Callable[..., Settings]
) -> tuple[Phone, WorkerPool]:
    """A gateway whose room audio is `WorkerRoomAudio` over one media worker, started and
    ready (the caller stops the pool)."""
    pools: list[WorkerPool] = []

    def in_a_worker(registry: RoomRegistry, bus: EventBus) -> WorkerRoomAudio:
        pools.append(WorkerPool(make_settings(media_workers=1), registry, bus, None, 1))
        return WorkerRoomAudio(pools[0])

    phone = await make_phone(room_audio_for=in_a_worker)
    pool = pools[0]
    await pool.start()
    assert await pool.ready(60)  # start returns at once; a start under load took 2-9 s
    return phone, pool


async def test_caller_and_participant_hear_each_other_through_a_media_worker(
    make_phone: PhoneFactory, make_settings: Callable[..., Settings], udp_peer: UdpPeer
) -> None:
    """The same call with the room's SFU in a worker process (`media_workers` = 1): the
    participant is an aiortc peer connected to that SFU, the gateway's room audio is
    `WorkerRoomAudio`."""
    phone, pool = await phone_with_a_media_worker(make_phone, make_settings)
    alice = RTCPeerConnection(client_configuration())
    heard_by_alice: list[np.ndarray] = []
    tasks: list[asyncio.Task[None]] = []

    async def to_alice(room: str, identity: str, event: str, data: dict[str, Any]) -> None:
        if event == "media_renegotiate":  # the caller's audio arrives as a new track
            await alice.setRemoteDescription(RTCSessionDescription(data["sdp"], "offer"))
            await alice.setLocalDescription(await alice.createAnswer())
            await pool.answer(room, identity, alice.localDescription.sdp, data["revision"])

    @alice.on("track")
    def subscribed(track: MediaStreamTrack) -> None:
        tasks.append(asyncio.create_task(collect_track(track, heard_by_alice)))

    pool.set_notify(to_alice)
    phone.registry.join(ROOM, "alice", "Alice", "mentor", "sid-1", media_mode=MediaMode.AUDIO)
    alice.addTrack(ToneTrack(PARTICIPANT_TONE))
    await alice.setLocalDescription(await alice.createOffer())
    connected = await pool.connect(ROOM, "alice", alice.localDescription.sdp)
    await alice.setRemoteDescription(RTCSessionDescription(connected.sdp, "answer"))

    pin = await phone.pins.ensure_room_pin(ROOM)
    sipp = phone.start_sipp(
        "call_wait_for_bye.xml", pin, args=("-set", "rtpport", str(udp_peer.port))
    )
    call = await phone.confirmed_call()
    await eventually(lambda: call.room)
    voice = asyncio.create_task(play_caller_voice(udp_peer, call.local_rtp_port))
    try:
        await eventually(lambda: sum(map(len, heard_by_alice)) > 2 * ONE_SECOND_48K, timeout=20)
        await eventually(lambda: call.mix is not None and "alice" in call.mix.sources)
        while not udp_peer.received.empty():  # drop what was sent before alice was mixed
            udp_peer.received.get_nowait()
        await eventually(lambda: udp_peer.received.qsize() > 2 * ONE_SECOND_8K // 240)
        heard_by_caller = caller_heard(udp_peer)
        worker = pool.worker_of(ROOM)
        assert worker is not None and worker.pid != os.getpid()
    finally:
        voice.cancel()
        await phone.gateway.hang_up(call.call_id)
        await alice.close()
        for task in tasks:
            task.cancel()
        await pool.stop()

    assert (await sipp).returncode == 0
    assert abs(dominant_frequency(heard_by_caller[-ONE_SECOND_8K:], 8000) - PARTICIPANT_TONE) < 10
    alice_audio = np.concatenate(heard_by_alice)[-ONE_SECOND_48K:]
    assert abs(dominant_frequency(alice_audio, 48000) - CALLER_TONE) < 10
