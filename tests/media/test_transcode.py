"""No codec in common: the SFU transcodes that one pair, and counts it."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from aiortc.codecs import h264

from tests.conftest import ADMIN
from tests.media.conftest import Join
from tests.media.support import DecodeErrors, without_codec
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow


async def test_subscriber_without_the_publishers_codec_gets_a_transcoded_stream(
    join: Join, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    h264_encodes = {"count": 0}
    original = h264.H264Encoder.encode

    def counting(self, frame, force_keyframe=False):  # type: ignore[no-untyped-def]
        h264_encodes["count"] += 1
        return original(self, frame, force_keyframe)

    monkeypatch.setattr(h264.H264Encoder, "encode", counting)
    errors = DecodeErrors()
    logging.getLogger("aiortc.rtcrtpreceiver").addHandler(errors)
    try:
        await join("ada")  # publishes VP8
        no_vp8 = await join("bo", publish=False, munge_offer=lambda sdp: without_codec(sdp, "VP8"))
        await eventually(
            lambda: len(no_vp8.received) == 2 and all(r.frames > 10 for r in no_vp8.received),
            timeout=30,
        )
    finally:
        logging.getLogger("aiortc.rtcrtpreceiver").removeHandler(errors)
    assert no_vp8.of_kind("video")[0].first_size == (160, 120)
    assert h264_encodes["count"] > 0  # the SFU encoded H264 for this pair
    assert errors.count == 0
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base_url}/api/v1/rooms/pair-1/stats", headers=ADMIN) as resp:
            people = {p["identity"]: p for p in (await resp.json())["participants"]}
        async with http.get(f"{base_url}/metrics") as resp:
            metrics = await resp.text()
    assert people["bo"]["transcoded_streams"] == 1  # video; audio stays Opus pass-through
    assert "pairwise_sfu_transcoded_pairs 1.0" in metrics
    assert 'pairwise_sfu_transcoded_frames_total{kind="video"}' in metrics
