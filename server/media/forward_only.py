"""VP9 and AV1: video codecs the SFU forwards but can never decode or encode.

aiortc has no VP9 or AV1 codec, but forwarding needs none: the SFU passes a frame's
RTP payloads on as they came (aiortc's `depayload` leaves a codec it does not know
untouched, codecs/__init__.py `depayload`), and only has to know where a frame may
start to be decoded (keyframes, below) and, for simulcast, how large a keyframe says its
layer is (`frame_size`). What it cannot do is transcode them, so one
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


def frame_size(codec: RTCRtpCodecParameters, data: bytes) -> tuple[int, int] | None:
    """The width and height a VP9 or AV1 keyframe (its RTP payloads, joined) says, or
    None: what the simulcast layer choice compares with a subscriber's tile
    (simulcast_choice.py), as `vp8_size` does for VP8 (forwarding.py)."""
    mime = codec.mimeType.lower()
    try:
        if mime == VP9:
            return _vp9_size(data)
        if mime == AV1:
            return _av1_size(data)
    except IndexError:  # cut short: a size cannot be read
        pass
    return None


def _vp9_size(data: bytes) -> tuple[int, int] | None:
    """From the payload descriptor's scalability structure (RFC 9628 §4.2-4.3), which
    Chrome puts on every keyframe's first packet: the top spatial layer's size."""
    first = data[0]
    if not first & 0x02:  # V: no scalability structure
        return None
    at = 1
    if first & 0x80:  # I: picture ID, 7 or 15 bits (M)
        at += 2 if data[at] & 0x80 else 1
    flexible = bool(first & 0x10)
    if first & 0x20:  # L: layer indices, and TL0PICIDX in non-flexible mode
        at += 1 if flexible else 2
    if flexible and first & 0x40:  # P_DIFFs (at most 3), each saying if another follows
        for _ in range(3):
            at += 1
            if not data[at - 1] & 0x01:
                break
    structure = data[at]
    spatial_layers = (structure >> 5) + 1
    if not structure & 0x10:  # Y: no sizes
        return None
    top = at + 1 + 4 * (spatial_layers - 1)
    if len(data) < top + 4:
        return None
    return int.from_bytes(data[top : top + 2], "big"), int.from_bytes(
        data[top + 2 : top + 4], "big"
    )


class _Bits:
    """Reads big-endian bit fields (AV1 spec §4.10 f(n), uvlc())."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            bit = (self.data[self.at >> 3] >> (7 - (self.at & 7))) & 1
            value = value << 1 | bit
            self.at += 1
        return value

    def uvlc(self) -> int:
        zeros = 0
        while not self.read(1):
            zeros += 1
            if zeros >= 32:
                return (1 << 32) - 1
        return self.read(zeros) + (1 << zeros) - 1


def _leb128(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = data[at + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, at + i + 1
    raise IndexError("leb128 longer than 8 bytes")


_OBU_SEQUENCE_HEADER = 1
_OBU_TEMPORAL_DELIMITER = 2


def _av1_size(data: bytes) -> tuple[int, int] | None:
    """From the sequence header OBU that starts a keyframe's first packet (AV1 RTP §4.4
    aggregation header, then OBU elements): its maximum frame size, which is the size
    Chrome encodes each layer at."""
    aggregation = data[0]
    count = (aggregation >> 4) & 0x03  # W: elements in the packet, 0 when each has a length
    at, element = 1, 0
    while at < len(data):
        element += 1
        if count == 0 or element < count:
            length, at = _leb128(data, at)
        else:
            length = len(data) - at
        obu, at = data[at : at + length], at + length
        if element == 1 and aggregation & 0x80:  # Z: the end of an OBU from the last packet
            continue
        header = obu[0]
        kind = (header >> 3) & 0x0F
        if kind == _OBU_SEQUENCE_HEADER:
            start = 2 if header & 0x04 else 1  # extension byte
            if header & 0x02:  # has_size_field (not usual in RTP, allowed)
                _, start = _leb128(obu, start)
            return _sequence_header_size(_Bits(obu[start:]))
        if kind != _OBU_TEMPORAL_DELIMITER or (count and element >= count):
            return None
    return None


def _sequence_header_size(bits: _Bits) -> tuple[int, int]:
    """AV1 spec §5.5.1 sequence_header_obu, read up to max_frame_height_minus_1."""
    bits.read(3)  # seq_profile
    bits.read(1)  # still_picture
    if bits.read(1):  # reduced_still_picture_header
        bits.read(5)  # seq_level_idx[0]
    else:
        decoder_model = False
        buffer_delay_bits = 0
        if bits.read(1):  # timing_info_present_flag
            bits.read(32)  # num_units_in_display_tick
            bits.read(32)  # time_scale
            if bits.read(1):  # equal_picture_interval
                bits.uvlc()  # num_ticks_per_picture_minus_1
            decoder_model = bool(bits.read(1))
            if decoder_model:
                buffer_delay_bits = bits.read(5) + 1
                bits.read(32)  # num_units_in_decoding_tick
                bits.read(5)  # buffer_removal_time_length_minus_1
                bits.read(5)  # frame_presentation_time_length_minus_1
        display_delay = bool(bits.read(1))  # initial_display_delay_present_flag
        for _ in range(bits.read(5) + 1):  # operating points
            bits.read(12)  # operating_point_idc
            if bits.read(5) > 7:  # seq_level_idx
                bits.read(1)  # seq_tier
            if decoder_model and bits.read(1):  # decoder_model_present_for_this_op
                bits.read(2 * buffer_delay_bits + 1)  # delays, low_delay_mode_flag
            if display_delay and bits.read(1):
                bits.read(4)  # initial_display_delay_minus_1
    width_bits = bits.read(4) + 1
    height_bits = bits.read(4) + 1
    return bits.read(width_bits) + 1, bits.read(height_bits) + 1


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
