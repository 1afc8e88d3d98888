"""Sections the SFU cannot take are refused one by one (port 0), never the whole offer:
VP9-only video that someone in the room cannot decode, video in a codec the SFU does
not have, and data channels (server/media/refused_sections.py)."""

from __future__ import annotations

from typing import Any

import pytest
from aiortc.sdp import SessionDescription

from server.media.refused_sections import Refusals
from tests.media.conftest import Join
from tests.media.support import MediaClient
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

VP9_ONLY = [
    "m=video 9 UDP/TLS/RTP/SAVPF 98 99",
    "c=IN IP4 0.0.0.0",
    "a=sendonly",
    "a=mid:v9",
    "a=rtcp-mux",
    "a=rtpmap:98 VP9/90000",
    "a=fmtp:98 profile-id=0",
    "a=rtpmap:99 rtx/90000",
    "a=fmtp:99 apt=98",
]
H265_ONLY = [line.replace("VP9", "H265").replace(":v9", ":h5") for line in VP9_ONLY]
DATA_CHANNEL = [
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    "a=mid:dc",
    "a=sctp-port:5000",
    "a=max-message-size:262144",
]


def with_section(section: list[str], first: bool) -> Any:
    """An offer munger: adds `section` (with the audio section's ICE and DTLS lines, as
    a browser bundling everything would) first or last, and to the BUNDLE group."""

    def munge(sdp: str) -> str:
        lines = sdp.split("\r\n")
        transport = [
            line
            for line in lines
            if line.startswith(("a=ice-ufrag", "a=ice-pwd", "a=fingerprint", "a=setup"))
        ]
        mid = next(line[6:] for line in section if line.startswith("a=mid:"))
        added = [*section, *transport]
        out: list[str] = []
        at = next(i for i, line in enumerate(lines) if line.startswith("m="))
        for i, line in enumerate(lines):
            if line.startswith("a=group:BUNDLE"):
                mids = line.split()[1:]
                line = " ".join(["a=group:BUNDLE", *([mid, *mids] if first else [*mids, mid])])
            if first and i == at:
                out += added
            out.append(line)
        if not first:
            while out and out[-1] == "":
                out.pop()
            out += [*added, ""]
        return "\r\n".join(out)

    return munge


def without_rejected(sdp: str) -> str:
    """The SFU's answer as this aiortc client (which never offered those sections) reads it."""
    refusals = Refusals()
    refusals.take(sdp.replace(" 0 UDP", " 9 UDP"))  # finds them again by their codecs
    return refusals.strip(sdp)


def sections(sdp: str) -> dict[str, tuple[str, int]]:
    return {str(m.rtp.muxId): (m.kind, m.port) for m in SessionDescription.parse(sdp).media}


async def audio_flows(publisher: MediaClient, subscriber: MediaClient) -> None:
    await eventually(
        lambda: any(r.kind == "audio" and r.frames > 25 for r in subscriber.received), timeout=20
    )
    assert not subscriber.of_kind("video")
    assert publisher.pc.connectionState == "connected"


async def test_vp9_only_video_is_refused_when_a_subscriber_cannot_decode_it_and_the_audio_still_flows(
    join: Join,
) -> None:
    # bo (aiortc) offers no VP9: the SFU, which cannot transcode VP9, takes none from ada.
    bo = await join("bo", publish=False, decode=False)
    ada = await join(
        "ada",
        video=[],
        connect=False,
        munge_first_offer=with_section(VP9_ONLY, first=True),
        munge_first_answer=without_rejected,
    )
    ack = await ada.connect()
    assert ack["refused"] == [{"mid": "v9", "kind": "video", "reason": "codec_not_shared"}]
    answered = sections(ack["sdp"])
    assert list(answered)[0] == "v9" and answered["v9"] == ("video", 0)
    assert answered["0"][0] == "audio" and answered["0"][1] != 0
    bundle = next(line for line in ack["sdp"].split("\r\n") if line.startswith("a=group"))
    assert "v9" not in bundle.split()
    await audio_flows(ada, bo)


async def test_a_data_channel_is_refused_and_the_audio_still_flows(join: Join) -> None:
    bo = await join("bo", publish=False, decode=False)
    ada = await join(
        "ada",
        video=[],
        connect=False,
        munge_first_offer=with_section(DATA_CHANNEL, first=False),
        munge_first_answer=without_rejected,
    )
    ack = await ada.connect()
    assert ack["refused"] == [{"mid": "dc", "kind": "application", "reason": "data_channel"}]
    assert sections(ack["sdp"])["dc"] == ("application", 0)
    await audio_flows(ada, bo)


def with_rejected_first(answer: str) -> str:
    """This client's answer with a rejected first section, as a browser answers the SFU's
    re-offer (which keeps the refused section, port 0, in its place)."""
    at = answer.index("\r\nm=") + 2
    return (
        answer[:at]
        + "m=video 0 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:h5\r\n"
        + answer[at:]
    )


async def test_later_offers_keep_the_refused_section_in_its_place(join: Join) -> None:
    ada = await join(
        "ada",
        video=[],
        connect=False,
        munge_first_offer=with_section(H265_ONLY, first=True),
        munge_first_answer=without_rejected,
        munge_offer=without_rejected,
        munge_answer=with_rejected_first,
    )
    await ada.connect()
    await join("carol")  # ada is re-offered carol's audio and video
    await eventually(lambda: ada.renegotiations >= 1, timeout=20)
    offer = ada.offers[-1]["sdp"]
    offered = sections(offer)
    assert list(offered)[0] == "h5" and offered["h5"] == ("video", 0)
    bundle = next(line for line in offer.split("\r\n") if line.startswith("a=group"))
    assert "h5" not in bundle.split()
    assert all("error" not in ack for ack in ada.answer_acks), ada.answer_acks
    await eventually(
        lambda: len(ada.received) == 2 and all(r.frames > 10 for r in ada.received), timeout=20
    )
