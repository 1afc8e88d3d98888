"""SFU re-offers: who owns each forwarded m-line, and numbers that never change meaning."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.sdp import SessionDescription

from tests.media.conftest import MEDIA_SETTINGS, Join
from tests.media.support import MediaClient, encode_video, numbering, renumbered
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

# aiortc's numbers → Chrome's (Opus 111, VP8 96 + RTX 97, H264 102/127 ...; mid is
# extension 4 and abs-send-time 2), so the SFU negotiates numbers unlike its own.
CHROME_PAYLOAD_TYPES = {96: 111, 97: 96, 98: 97, 99: 102, 100: 103, 101: 127, 102: 125}
CHROME_EXTENSION_IDS = {1: 4, 2: 1, 3: 2}


def chrome_like(sdp: str) -> str:
    return renumbered(sdp, CHROME_PAYLOAD_TYPES, CHROME_EXTENSION_IDS)


def stream_ids(sdp: str) -> dict[str, str]:
    """mid → the stream id of the m-line's a=msid."""
    return {
        m.rtp.muxId: m.msid.split()[0]
        for m in SessionDescription.parse(sdp).media
        if m.msid and m.rtp.muxId
    }


async def frames_grow(person: MediaClient, mids: list[str], by: int = 10) -> None:
    tracks = [r for r in person.received if r.mid in mids]
    before = [r.frames for r in tracks]
    await eventually(
        lambda: all(r.frames > b + by for r, b in zip(tracks, before, strict=True)), timeout=20
    )


async def test_offers_name_each_tracks_owner(join: Join) -> None:
    # Three publishers with pictures of different sizes: the size a subscriber decodes
    # on an m-line tells whose video really arrives there.
    sizes = {"bo": (160, 120), "carol": (192, 144), "dan": (224, 176)}
    for identity, (width, height) in sizes.items():
        await join(identity, video=encode_video(30, width=width, height=height, keyint=10))
    eve = await join("eve", publish=False)
    await eventually(
        lambda: (
            len(eve.of_kind("video")) == 3
            and all(r.first_size is not None for r in eve.of_kind("video"))
        ),
        timeout=30,
    )
    tracks: dict[str, dict[str, str]] = {}
    for offer in eve.offers:
        tracks.update(offer["tracks"])
    for received in eve.received:
        assert received.mid in tracks, (received.mid, tracks)
        assert tracks[received.mid]["kind"] == received.kind
    for video in eve.of_kind("video"):
        owner = tracks[str(video.mid)]["identity"]
        assert video.first_size == sizes[owner], (owner, video.first_size)
    owners = sorted((t["identity"], t["kind"]) for t in tracks.values())
    assert owners == sorted((who, kind) for who in sizes for kind in ("audio", "video"))
    # The msid's stream id names the owner too (what a browser's ontrack reports).
    msids = stream_ids(eve.offers[-1]["sdp"])
    assert {mid: msids[mid] for mid in tracks} == {mid: t["identity"] for mid, t in tracks.items()}


# Five aiortc peers and the server share one event loop here: in a loaded full run (CI) ada's
# RTP has paused longer than the usual 1.5 s silence rule, and once (2026-12-07, a 44-minute
# run) longer than 3 s: no_rtp, then media_recovered. A re-offer that broke ada's numbers
# stops her media for good: she is never moved back to video, and her frames stop.
@pytest.mark.parametrize("media_settings", [{**MEDIA_SETTINGS, "media_silence_seconds": 3.0}])
async def test_reoffers_keep_numbers_and_the_publisher_keeps_flowing(join: Join) -> None:
    ada = await join("ada", munge_first_offer=chrome_like)
    bo = await join("bo", publish=False, decode=False)
    await eventually(lambda: len(bo.received) == 2 and all(r.frames > 5 for r in bo.received))
    for count, identity in enumerate(("carol", "dan", "fay"), start=1):
        await join(identity, decode=False)  # only ada's and bo's frames are looked at
        await eventually(lambda c=count: ada.renegotiations >= c, timeout=20)
    assert ada.first_exchange is not None
    sent_offer, answer = ada.first_exchange
    negotiated = numbering(answer)
    first_offer = numbering(sent_offer)
    assert negotiated["0"][0].get(111, "").startswith("audio/opus")  # Chrome's numbers
    for offer in ada.offers:
        current = numbering(offer["sdp"])
        for mid, numbers in negotiated.items():
            assert current[mid] == numbers, f"m-line {mid} renumbered in revision {offer}"
        # One meaning per number in the whole BUNDLE, including the first offer's numbers.
        codec_of: dict[int, str] = {}
        uri_of: dict[int, str] = {}
        for codecs, extensions in [*first_offer.values(), *current.values()]:
            for pt, codec in codecs.items():
                assert codec_of.setdefault(pt, codec) == codec, (pt, codec, codec_of[pt])
            for number, uri in extensions.items():
                assert uri_of.setdefault(number, uri) == uri, (number, uri)
    assert all("error" not in ack for ack in ada.answer_acks)

    # After three re-offers (and longer than the silence threshold) ada's frames still
    # reach the SFU: bo keeps receiving them, and ada is on video (a stall of the shared
    # loop may have moved her down for a moment; broken numbers would keep her there).
    await asyncio.sleep(3.5)
    await frames_grow(bo, [str(r.mid) for r in bo.received], by=20)

    def ada_on_video() -> bool:
        modes = [e["mode"] for e in bo.socket.events["media_mode"] if e["identity"] == "ada"]
        return modes[-1:] in ([], ["video"])

    await eventually(ada_on_video)
    # And ada receives the others' video on the m-lines the SFU added.
    await frames_grow(ada, [str(r.mid) for r in ada.of_kind("video")])


# Gus's frames judged over 3 s, not 1.5: on a loaded 2-core machine the first late answer
# has come more than 1.5 s after gus connected (a CI run: no_rtp, then media_recovered).
# The frame counts below still require gus's frames to reach bo.
@pytest.mark.parametrize("media_settings", [{**MEDIA_SETTINGS, "media_silence_seconds": 3.0}])
async def test_a_slow_answer_to_the_first_reoffer_keeps_the_publishers_numbers(
    join: Join,
) -> None:
    # Gus joins a room where others already publish, so the SFU re-offers right after
    # its answer; gus answers that late, once its media flows. The SFU's receivers start
    # in between and must still use the numbers gus negotiated, not aiortc's own.
    bo = await join("bo", publish=False, decode=False)
    await join("carol")
    gus = await join("gus", munge_first_offer=chrome_like, answer_late=True)
    await eventually(lambda: gus.renegotiations >= 1, timeout=20)
    await eventually(lambda: len(bo.received) == 4, timeout=20)
    await frames_grow(bo, [str(r.mid) for r in bo.received], by=20)
    assert not [e for e in bo.socket.events["media_mode"] if e["identity"] == "gus"]


def inactive_mids(sdp: str) -> set[str]:
    return {
        str(m.rtp.muxId)
        for m in SessionDescription.parse(sdp).media
        if m.direction == "inactive" or m.port == 0
    }


async def test_one_leave_is_one_renegotiation_for_everyone(join: Join) -> None:
    # Bo publishes audio and video; when bo leaves, carol's very first re-offer ends both
    # of bo's m-lines (it used to take two offers, one per track).
    bo = await join("bo")
    carol = await join("carol", publish=False, decode=False)
    await eventually(lambda: len(carol.received) == 2 and carol.renegotiations >= 1)
    await eventually(lambda: all(r.frames > 0 for r in carol.received))
    bos = {
        mid for offer in carol.offers for mid, t in offer["tracks"].items() if t["identity"] == "bo"
    }
    assert len(bos) == 2
    before = len(carol.offers)
    ack = await bo.socket.call("leave", {})
    assert "error" not in ack, ack
    await eventually(lambda: len(carol.offers) > before, timeout=20)
    first = carol.offers[before]
    assert bos <= inactive_mids(first["sdp"]), first["sdp"]
    assert not any(t["identity"] == "bo" for t in first["tracks"].values())
    # The next offer carol gets is for the next change (dan joining), not a second one
    # for bo's leave.
    await join("dan")
    await eventually(lambda: len(carol.offers) > before + 1, timeout=20)
    following = carol.offers[before + 1]["tracks"].values()
    assert any(t["identity"] == "dan" for t in following), carol.offers[before + 1]
