"""Room → caller delay: the room's audio that arrives while the caller hears "you are
joining" must not queue up in the mix and stay as delay for the rest of the call (it
did: ~200 ms more than a WebRTC listener, benchmarks/phone_latency.py)."""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
import pytest

from server.phone.bridge import PHONE_RATE
from tests.sip.conftest import Phone, PhoneFactory, UdpPeer, eventually
from tests.sip.media import g711_packets, tone

pytestmark = [pytest.mark.slow, pytest.mark.sip]


def frame_48k(start: int) -> av.AudioFrame:
    samples = (4000 * np.sin(2 * np.pi * 440 * np.arange(start, start + 960) / 48000)).astype(
        np.int16
    )
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = 48000, start, fractions.Fraction(1, 48000)
    return frame


async def test_room_audio_during_the_joining_prompt_adds_no_delay(
    make_phone: PhoneFactory, udp_peer: UdpPeer
) -> None:
    phone: Phone = await make_phone(voice_prompts=False)
    pin = await phone.pins.ensure_room_pin("room-delay")
    sipp = phone.start_sipp(
        "call_wait_for_bye.xml", pin, args=("-set", "rtpport", str(udp_peer.port))
    )
    call = await phone.confirmed_call()
    for packet in g711_packets("PCMA", tone(1000, 0.09), 8, ssrc=7):  # latch the media
        udp_peer.send(packet, call.local_rtp_port)
    await eventually(lambda: call.room is not None and call.mix is not None and call.prompting)
    assert call.mix is not None
    mix = call.mix

    async def room_speaks() -> None:  # another participant, in real time, 20 ms frames
        start, began = 0, asyncio.get_running_loop().time()
        while True:
            mix.push("ada", frame_48k(start))
            start += 960
            await asyncio.sleep(max(0.0, began + start / 48000 - asyncio.get_running_loop().time()))

    speaking = asyncio.create_task(room_speaks())
    try:
        await eventually(lambda: not call.prompting, timeout=15)
        queued = mix._sources["ada"].buffered
    finally:
        speaking.cancel()
        await phone.gateway.hang_up(call.call_id)
    # Prefill (60 ms) and at most a frame and a packet on top; not the 200 ms cap.
    assert queued <= (60 + 20 + 30) * PHONE_RATE // 1000, queued
    assert (await sipp).returncode == 0
