"""A phone call across the death of the media worker that holds its room.

The room's SFU runs in a worker process (`media_workers` = 1), the caller is sipp with
the test's own RTP socket, the WebRTC participant an aiortc peer. The worker is
SIGKILLed mid-call: the SIP dialog must stay up (no BYE either way), the participant
gets `media_failed` (`worker_lost`) and reconnects, and once the room is pinned on the
replacement worker both directions carry audio again (checked by FFT, as in
test_end_to_end.py). With one worker there is no other to move to: the caller's audio
and taps wait for the replacement to start.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from server.config import Settings
from server.media.workers.pool import WorkerPool
from server.rooms.model import MediaMode
from tests.media.support import client_configuration
from tests.sip.conftest import PhoneFactory, UdpPeer, eventually
from tests.sip.media import ToneTrack, dominant_frequency, g711_packets, tone
from tests.sip.test_end_to_end import (
    CALLER_TONE,
    ONE_SECOND_8K,
    ONE_SECOND_48K,
    PARTICIPANT_TONE,
    caller_heard,
    collect_track,
    phone_with_a_media_worker,
)

pytestmark = [pytest.mark.slow, pytest.mark.sip]

ROOM = "mentoring-worker-kill"


async def keep_talking(peer: UdpPeer, port: int) -> None:
    """The caller speaks for as long as the test runs: 1000 Hz PCMA, 30 ms packets."""
    second = tone(CALLER_TONE, 1.0)
    sequence = timestamp = 0
    while True:
        for packet in g711_packets(
            "PCMA", second, 8, ssrc=4242, ptime_ms=30, sequence=sequence, timestamp=timestamp
        ):
            peer.send(packet, port)
            await asyncio.sleep(0.03)
        sequence, timestamp = sequence + 33, timestamp + 33 * 240


class Participant:
    """alice: an aiortc peer on the room's worker, playing 850 Hz, rebuilt on demand."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.pc = RTCPeerConnection(client_configuration())
        self.heard: list[np.ndarray] = []
        self.failed = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        # One exchange at a time, as the web client keeps them: the worker's offer of the
        # caller's audio can come while this side's own offer waits for its answer.
        self.exchange = asyncio.Lock()

    async def notify(self, room: str, identity: str, event: str, data: dict[str, Any]) -> None:
        if event == "media_renegotiate":
            async with self.exchange:
                if self.pc.signalingState == "closed":
                    return  # an offer on the connection the worker's death closed is moot
                # the caller's audio arrives as a new track
                await self.pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "offer"))
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                sdp = self.pc.localDescription.sdp
                await self.pool.answer(room, identity, sdp, data["revision"])
        elif event == "media_failed" and data["reason"] == "worker_lost":
            self.failed.set()

    async def connect(self, reconnect_reason: str | None = None) -> None:
        """A fresh connection (what a client does after `media_failed`); what it hears is
        collected from scratch."""
        old, self.pc = self.pc, RTCPeerConnection(client_configuration())
        if reconnect_reason is not None:
            await old.close()
        self.heard = []
        heard = self.heard

        @self.pc.on("track")
        def subscribed(track: MediaStreamTrack) -> None:
            self.tasks.append(asyncio.create_task(collect_track(track, heard)))

        self.pc.addTrack(ToneTrack(PARTICIPANT_TONE))
        async with self.exchange:
            await self.pc.setLocalDescription(await self.pc.createOffer())
            connected = await self.pool.connect(
                ROOM, "alice", self.pc.localDescription.sdp, reconnect_reason=reconnect_reason
            )
            await self.pc.setRemoteDescription(RTCSessionDescription(connected.sdp, "answer"))

    def heard_seconds(self) -> float:
        return sum(map(len, self.heard)) / ONE_SECOND_48K

    async def close(self) -> None:
        await self.pc.close()
        for task in self.tasks:
            task.cancel()


async def both_hear_each_other(call: Any, alice: Participant, udp_peer: UdpPeer) -> np.ndarray:
    """Two seconds of each direction, from now: what the caller heard."""
    await eventually(lambda: alice.heard_seconds() > 2, timeout=30)
    await eventually(lambda: call.mix is not None and "alice" in call.mix.sources, timeout=30)
    while not udp_peer.received.empty():  # drop what was sent before alice was mixed
        udp_peer.received.get_nowait()
    await eventually(lambda: udp_peer.received.qsize() > 2 * ONE_SECOND_8K // 240, timeout=30)
    return caller_heard(udp_peer)


def assert_tones(heard_by_caller: np.ndarray, alice: Participant) -> None:
    assert abs(dominant_frequency(heard_by_caller[-ONE_SECOND_8K:], 8000) - PARTICIPANT_TONE) < 10
    alice_audio = np.concatenate(alice.heard)[-ONE_SECOND_48K:]
    assert abs(dominant_frequency(alice_audio, 48000) - CALLER_TONE) < 10


async def test_a_call_survives_the_death_of_its_rooms_media_worker(
    make_phone: PhoneFactory, make_settings: Callable[..., Settings], udp_peer: UdpPeer
) -> None:
    phone, pool = await phone_with_a_media_worker(make_phone, make_settings)
    alice = Participant(pool)
    pool.set_notify(alice.notify)
    phone.registry.join(ROOM, "alice", "Alice", "mentor", "sid-1", media_mode=MediaMode.AUDIO)
    await alice.connect()

    pin = await phone.pins.ensure_room_pin(ROOM)
    # Longer than the usual 30 s for the whole call: two rounds of checks and a restart.
    args = ("-set", "rtpport", str(udp_peer.port), "-timeout", "120s")
    sipp = phone.start_sipp("call_wait_for_bye.xml", pin, args=args)
    call = await phone.confirmed_call()
    await eventually(lambda: call.room)
    voice = asyncio.create_task(keep_talking(udp_peer, call.local_rtp_port))
    try:
        assert_tones(await both_hear_each_other(call, alice, udp_peer), alice)
        victim = pool.worker_of(ROOM)
        assert victim is not None

        os.kill(victim.pid, signal.SIGKILL)
        await asyncio.wait_for(alice.failed.wait(), 30)
        await alice.connect(reconnect_reason="worker_lost")
        heard_by_caller = await both_hear_each_other(call, alice, udp_peer)
        assert_tones(heard_by_caller, alice)

        replacement = pool.worker_of(ROOM)
        assert replacement is not None and replacement.pid != victim.pid
        # The call itself never noticed: same dialog, still confirmed, sipp still in it.
        assert call.call_id in phone.gateway.calls and not phone.gateway.ended_calls
        assert not sipp.done()
    finally:
        voice.cancel()
        await phone.gateway.hang_up(call.call_id)
        await alice.close()
        await pool.stop()

    assert (await sipp).returncode == 0  # sipp saw our BYE, and no other, end the call
    assert phone.gateway.ended_calls[-1].end_reason == "removed"
