"""VP9 and AV1 as forward-only codecs: keyframes read from payload headers, what a
client decodes read from its offer, and aiortc negotiating them only in the SFU's
context (server/media/forward_only.py; the browsers: tests/e2e/test_forward_only_codecs.py)."""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from server.media import aiortc_internals as internals
from server.media import forward_only
from server.media.forwarding import is_keyframe

CHROME_VIDEO = [
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 45 46",
    "a=rtpmap:96 VP8/90000",
    "a=rtpmap:97 rtx/90000",
    "a=fmtp:97 apt=96",
    "a=rtpmap:98 VP9/90000",
    "a=rtcp-fb:98 nack",
    "a=fmtp:98 profile-id=0",
    "a=rtpmap:99 rtx/90000",
    "a=fmtp:99 apt=98",
    "a=rtpmap:100 VP9/90000",
    "a=rtcp-fb:100 nack",
    "a=fmtp:100 profile-id=2",
    "a=rtpmap:101 rtx/90000",
    "a=fmtp:101 apt=100",
    "a=rtpmap:45 AV1/90000",
    "a=fmtp:45 level-idx=5;profile=0;tier=0",
    "a=rtpmap:46 rtx/90000",
    "a=fmtp:46 apt=45",
]
OFFER = "\r\n".join(["v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=rtpmap:111 opus/48000/2"])
OFFER += "\r\n" + "\r\n".join(CHROME_VIDEO) + "\r\n"


def test_keyframes_are_read_from_the_first_payload_header() -> None:
    vp9 = forward_only.codecs({forward_only.VP9})[0]
    av1 = forward_only.codecs({forward_only.AV1})[0]
    # VP9 (RFC 9628): B set, P clear is a keyframe; P set is predicted from another.
    assert is_keyframe(vp9, bytes([0x8A, 0x80, 0x01]))
    assert not is_keyframe(vp9, bytes([0xCA, 0x80, 0x02]))
    assert not is_keyframe(vp9, bytes([0x82, 0x80, 0x03]))  # not a frame's start
    # AV1 aggregation header: N starts a coded video sequence (as Chrome sent: 0x68).
    assert is_keyframe(av1, bytes([0x68, 0x0B, 0x08, 0x00]))
    assert not is_keyframe(av1, bytes([0x10, 0x30, 0x30, 0x00]))
    assert not is_keyframe(vp9, b"") and not is_keyframe(av1, b"")


# Keyframes' first payloads as Chromium 156 sent them to the SFU (their first bytes),
# simulcast with scalabilityMode L1T3, one per layer: a 1280x720 camera (VP9; CPU
# adaptation later scaled it to 960x540) and a 640x360 top layer (AV1).
VP9_KEYFRAMES = [
    ((320, 180), "bfb3a51010014000b4834983420013f00b3108e0907065880007"),
    ((640, 360), "bb9df6101002800168834983420027f0167120e0907065b00004"),
    ((1280, 720), "bbc0d91010050002d083498342004ff02cf1a8e0907066580005"),
    ((960, 540), "bbc127101003c0021c83498342003bf021b088e0"),
]
AV1_KEYFRAMES = [
    # one operating point (the first keyframe, before the L1T3 mode applied)
    ((320, 180), "280b08000000043cfecc01a00830104c50279e79"),
    # three operating points (L1T3); these also have the aggregation header's Y bit
    ((320, 180), "680f0800210700818040410f3fb3006802340010"),
    ((640, 360), "6810080021070881844043313fd9c01a00803400"),
]


def test_layer_sizes_are_read_from_vp9_and_av1_keyframes() -> None:
    vp9 = forward_only.codecs({forward_only.VP9})[0]
    av1 = forward_only.codecs({forward_only.AV1})[0]
    for size, payload in VP9_KEYFRAMES:
        assert forward_only.frame_size(vp9, bytes.fromhex(payload)) == size
    for size, payload in AV1_KEYFRAMES:
        assert forward_only.frame_size(av1, bytes.fromhex(payload)) == size
    # A temporal delimiter before the sequence header (three OBU elements, W=3).
    first = bytes.fromhex(AV1_KEYFRAMES[0][1])
    assert forward_only.frame_size(av1, b"\x38\x01\x10" + first[1:]) == (320, 180)
    # Nothing to read: a VP9 frame without a scalability structure (V clear), an AV1
    # packet starting with a frame OBU, payloads cut short, another codec.
    assert forward_only.frame_size(vp9, bytes.fromhex("8980b4834983")) is None
    assert forward_only.frame_size(av1, bytes.fromhex("1832" + "00" * 8)) is None
    for _, payload in VP9_KEYFRAMES:
        for cut in (0, 3, 6, 8):
            assert forward_only.frame_size(vp9, bytes.fromhex(payload)[:cut]) is None
    for _, payload in AV1_KEYFRAMES:
        for cut in (0, 3, 6, 9):
            assert forward_only.frame_size(av1, bytes.fromhex(payload)[:cut]) is None
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    assert forward_only.frame_size(vp8, bytes.fromhex(VP9_KEYFRAMES[0][1])) is None


def test_what_a_client_decodes_comes_from_its_offer_and_the_room_takes_only_shared_ones() -> None:
    assert forward_only.offered(OFFER) == {forward_only.VP9, forward_only.AV1}
    assert forward_only.offered(OFFER.replace("VP9", "H265")) == {forward_only.AV1}
    assert forward_only.shared([]) == forward_only.ALL  # nobody else: anything goes
    assert forward_only.shared([{forward_only.VP9}, forward_only.ALL]) == {forward_only.VP9}
    assert forward_only.shared([{forward_only.VP9}, set()]) == set()


def test_other_profiles_are_taken_out_of_an_offer_with_their_rtx() -> None:
    lines = forward_only.only_profile_0(OFFER).split("\r\n")
    assert "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 45 46" in lines
    assert not [line for line in lines if line.split(" ")[0].endswith((":100", ":101"))]
    assert "a=fmtp:98 profile-id=0" in lines and "a=fmtp:45 level-idx=5;profile=0;tier=0" in lines


async def test_aiortc_offers_them_only_in_the_sfus_context() -> None:
    async def video_offer() -> str:
        pc = RTCPeerConnection()
        pc.addTransceiver("video")
        try:
            return str((await pc.createOffer()).sdp)
        finally:
            await pc.close()

    with internals.forward_only_codecs(forward_only.ALL):
        inside = await video_offer()
    outside = await video_offer()  # e.g. a test's aiortc client: it decodes neither
    assert "VP9/90000" in inside and "AV1/90000" in inside and "VP8/90000" in inside
    assert "VP9/90000" not in outside and "AV1/90000" not in outside
