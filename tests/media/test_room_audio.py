"""The phone gateway's seam: a phone caller's audio into the room, the room's audio out."""

from __future__ import annotations

import asyncio
import fractions
from typing import Any

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.phone.sfu_audio import SfuRoomAudio
from server.rooms.model import MediaMode
from tests.media.conftest import Join
from tests.support.parts import ServerParts
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow


class Tone(MediaStreamTrack):
    """What PhoneTrack yields: 20 ms, 48 kHz, s16 mono frames, in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await asyncio.sleep(0.02)
        t = (np.arange(960) + 960 * self.count) / 48000
        samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, self.count * 960
        frame.time_base = fractions.Fraction(1, 48000)
        self.count += 1
        return frame


async def test_phone_caller_is_heard_in_the_room_and_hears_it(join: Join, server: Any) -> None:
    services = ServerParts(server.app)
    room_audio = SfuRoomAudio(services.sfu)
    ada = await join("ada")
    await ada.wait_connected()
    services.rooms.join(
        "pair-1", "phone-1", "Caller", "mentee", "sip:1", media_mode=MediaMode.PHONE
    )
    mix = room_audio.room_mix("pair-1", exclude_identity="phone-1")
    room_audio.publish_track("pair-1", "phone-1", Tone())
    await eventually(lambda: len(ada.received) == 1 and ada.received[0].frames > 20)
    assert ada.received[0].kind == "audio"
    # The caller's level goes with the audio: the caller is the room's speaker.
    await ada.socket.wait_for("active_speaker", {"identity": "phone-1"})
    await eventually(lambda: "ada" in mix.sources)
    await eventually(
        lambda: np.abs(mix.read(8000 // 10)).max() > 0, what="the caller hearing the room"
    )

    room_audio.unpublish_track("pair-1", "phone-1")
    await eventually(lambda: ada.received[0].ended.is_set())
    mix.close()
