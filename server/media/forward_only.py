"""VP9 and AV1: video codecs the SFU forwards but can never decode or encode.

aiortc has no VP9 or AV1 codec, but forwarding needs none: the SFU passes a frame's
RTP payloads on as they came (aiortc's `depayload` leaves a codec it does not know
untouched, codecs/__init__.py `depayload`), and only has to know where a frame may
start to be decoded (keyframes, below). What it cannot do is transcode them, so one
of these codecs is taken from a publisher only when every subscriber can take it too:

- A publisher's offer gets VP9 or AV1 answered only if every other participant with a
  media connection in the room named that codec in its own offer (a browser's offer
  lists the codecs it decodes). Otherwise the codec is left out of the answer: the
  browser sends its next choice (VP8 or H264), or, when it offered nothing else, that
  section is refused on its own (`codec_not_shared`) and its audio still flows.
- A publication keeps its codec for its whole life (a publisher's media reconnect is
  answered with the same one), so forwarded tracks never change codec under a
  subscriber.
- A subscriber who joins later and cannot take the codec gets no track for that
  video: it is told why (`media_unavailable`, reason `codec_unsupported`) and gets the
  publisher's audio as usual. Asking the publisher to renegotiate down to VP8 instead
  would change the codec under every subscriber already watching; the next
  publication (the publisher's next join) is negotiated for the room as it is then.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiortc.rtcrtpparameters import (
    RTCRtcpFeedback,
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
)

VP9 = "video/vp9"
AV1 = "video/av1"

# What the SFU answers and offers, profile 0 only: the one every browser decodes.
# (aiortc matches codecs by name and clock rate only, so other profiles are taken out
# of an offer before aiortc reads it: `only_profile_0`.)
_PARAMETERS: dict[str, dict[str, str | int | None]] = {
    VP9: {"profile-id": 0},
    AV1: {"level-idx": 5, "profile": 0, "tier": 0},
}
_PAYLOAD_TYPES = {VP9: 103, AV1: 105}  # after aiortc's own (VP8 97, H264 99 and 101)
_FEEDBACK = [
    RTCRtcpFeedback(type="nack"),
    RTCRtcpFeedback(type="nack", parameter="pli"),
    RTCRtcpFeedback(type="goog-remb"),
]
_NAMES = {VP9: "VP9", AV1: "AV1"}


def codecs(mimes: Iterable[str]) -> list[RTCRtpCodecParameters]:
    """The codec table entries (each with its RTX) for these forward-only codecs."""
    out: list[RTCRtpCodecParameters] = []
    for mime in sorted(set(mimes) & set(_PARAMETERS)):
        pt = _PAYLOAD_TYPES[mime]
        out += [
            RTCRtpCodecParameters(
                mimeType=f"video/{_NAMES[mime]}",
                clockRate=90000,
                payloadType=pt,
                rtcpFeedback=list(_FEEDBACK),
                parameters=dict(_PARAMETERS[mime]),
            ),
            RTCRtpCodecParameters(
                mimeType="video/rtx", clockRate=90000, payloadType=pt + 1, parameters={"apt": pt}
            ),
        ]
    return out


ALL = frozenset(_PARAMETERS)


def covers(codec: RTCRtpCodecParameters | None) -> bool:
    """Whether `codec` is one the SFU only forwards."""
    return codec is not None and codec.mimeType.lower() in ALL


def preferences(codec: RTCRtpCodecParameters) -> list[RTCRtpCodecCapability]:
    """A subscriber's transceiver offers exactly the publisher's codec (and RTX)."""
    mime = codec.mimeType.lower()
    return [
        RTCRtpCodecCapability(
            mimeType=f"video/{_NAMES[mime]}", clockRate=90000, parameters=dict(_PARAMETERS[mime])
        ),
        RTCRtpCodecCapability(mimeType="video/rtx", clockRate=90000),
    ]


def name(codec: RTCRtpCodecParameters) -> str:
    return _NAMES.get(codec.mimeType.lower(), codec.mimeType)


def is_keyframe(mime: str, data: bytes) -> bool:
    """Whether a frame (its RTP payloads, joined) can be decoded on its own, read from
    its first packet's payload header."""
    if not data:
        return False
    if mime == VP9:
        # RFC 9628 §4.2: I P L F B E V Z. A frame's first packet has B (start of frame);
        # P clear means no inter-picture prediction: a keyframe.
        return bool(data[0] & 0x08) and not data[0] & 0x40
    # AV1 RTP §4.4 aggregation header Z Y W W N - - -: N starts a coded video sequence,
    # which only a keyframe does.
    return bool(data[0] & 0x08)


def offered(sdp: str) -> set[str]:
    """The forward-only codecs (mime types) a client's offer names in a video section:
    what its browser can decode."""
    found: set[str] = set()
    video = False
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if line.startswith("m="):
            video = line.startswith("m=video")
        elif video and line.startswith("a=rtpmap:") and len(line.split()) > 1:
            mime = "video/" + line.split()[1].split("/")[0].lower()
            if mime in ALL:
                found.add(mime)
    return found


def shared(others: Iterable[set[str]]) -> set[str]:
    """The forward-only codecs every one of `others` (each a set from `offered`) takes."""
    common = set(ALL)
    for codecs_of_one in others:
        common &= codecs_of_one
    return common


def only_profile_0(sdp: str) -> str:
    """A client's offer without the VP9 and AV1 payload types (and their RTX) of
    another profile than 0."""
    fmtp = {}
    other = set()
    lines = sdp.replace("\r\n", "\n").split("\n")
    for line in lines:
        if line.startswith("a=fmtp:"):
            pt, _, params = line[7:].partition(" ")
            fmtp[pt] = dict(p.split("=", 1) for p in params.split(";") if "=" in p)
    for line in lines:
        if line.startswith("a=rtpmap:") and len(line.split()) > 1:
            pt = line[9:].split()[0]
            key = {"vp9": "profile-id", "av1": "profile"}.get(line.split()[1].split("/")[0].lower())
            if key is not None and fmtp.get(pt, {}).get(key, "0") != "0":
                other.add(pt)
    return without_payload_types(sdp, other) if other else sdp


def without_payload_types(sdp: str, payload_types: set[str]) -> str:
    """`sdp` without these payload types, nor the RTX that repairs them."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    drop = set(payload_types)
    for line in lines:
        if line.startswith("a=fmtp:") and line.split("apt=")[-1] in payload_types:
            drop.add(line[7:].split()[0])
    kept = []
    for line in lines:
        if line.startswith("m="):
            parts = line.split()
            line = " ".join(parts[:3] + [p for p in parts[3:] if p not in drop])
        elif (
            line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"))
            and line.split(":", 1)[1].split()[0] in drop
        ):
            continue
        kept.append(line)
    return "\r\n".join(kept)
