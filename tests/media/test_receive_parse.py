"""The C receive path (server/media/_rtp_receive.c) against aiortc's own: every packet
that `pylibsrtp.Session.unprotect` + `RtpPacket.parse` accept comes out the same, every
one they refuse comes out None, with real SRTP sessions on both sides; every VP8 payload
loses the same descriptor as in aiortc's `vp8_depayload`."""

from __future__ import annotations

import struct
from typing import Any

import pylibsrtp
import pytest
from aiortc.codecs.vpx import vp8_depayload
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from server.media import _rtp_receive
from server.media.aiortc_internals.base import srtp_address
from server.media.aiortc_internals.direct_receive import (
    _IDS,
    EXTENSION_KINDS,
    SRTP_UNPROTECT,
    _parse_problems,
)

KEY = bytes(range(30))
URIS = {
    "urn:ietf:params:rtp-hdrext:sdes:mid": 1,
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id": 2,
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id": 3,
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 4,
    "urn:ietf:params:rtp-hdrext:toffset": 5,
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level": 6,
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01": 7,
}


def session(direction: int, key: bytes = KEY) -> pylibsrtp.Session:
    return pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=direction))


def extensions_map(uris: dict[str, int] = URIS) -> HeaderExtensionsMap:
    ext_map = HeaderExtensionsMap()
    ext_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=i, uri=uri) for uri, i in uris.items()
            ]
        )
    )
    return ext_map


class Receiver:
    """Two inbound sessions with one key: one for C, one for aiortc's path (each keeps
    its own replay window)."""

    def __init__(self, ext_map: HeaderExtensionsMap) -> None:
        self.c = session(pylibsrtp.Policy.SSRC_ANY_INBOUND)
        self.py = session(pylibsrtp.Policy.SSRC_ANY_INBOUND)
        self.ext_map = ext_map

    def by_c(self, data: bytes) -> Any:
        ids = getattr(self.ext_map, _IDS)
        return _rtp_receive.unprotect_parse(srtp_address(self.c), SRTP_UNPROTECT, data, ids)

    def by_aiortc(self, data: bytes) -> RtpPacket | None:
        try:
            return RtpPacket.parse(self.py.unprotect(data), self.ext_map)
        except (pylibsrtp.Error, ValueError, struct.error):
            return None


def same(a: RtpPacket, b: RtpPacket) -> None:
    assert type(a) is type(b) is RtpPacket
    assert vars(a) == vars(b)
    assert type(a.extensions) is type(b.extensions)
    for kind in EXTENSION_KINDS:
        assert getattr(a.extensions, kind) == getattr(b.extensions, kind), kind
        assert type(getattr(a.extensions, kind)) is type(getattr(b.extensions, kind)), kind


def one_byte(elements: list[tuple[int, bytes]], pad: int) -> bytes:
    body = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in elements) + bytes(pad)
    body += bytes(-len(body) % 4)
    return struct.pack("!HH", 0xBEDE, len(body) // 4) + body


def two_byte(elements: list[tuple[int, bytes]], pad: int) -> bytes:
    body = b"".join(bytes([i, len(v)]) + v for i, v in elements) + bytes(pad)
    body += bytes(-len(body) % 4)
    return struct.pack("!HH", 0x1000, len(body) // 4) + body


def rtp(
    *,
    seq: int,
    marker: int = 0,
    payload_type: int = 96,
    timestamp: int = 0,
    ssrc: int = 1234,
    csrc: list[int] | None = None,
    extension: bytes = b"",
    payload: bytes = b"\x10\x00\x00",
    padding: int = 0,
) -> bytes:
    csrc = csrc or []
    first = 0x80 | (0x20 if padding else 0) | (0x10 if extension else 0) | len(csrc)
    header = struct.pack("!BBHLL", first, (marker << 7) | payload_type, seq, timestamp, ssrc)
    header += b"".join(struct.pack("!L", c) for c in csrc)
    tail = bytes(padding - 1) + bytes([padding]) if padding else b""
    return header + extension + payload + tail


def test_the_checks_of_what_c_takes_from_aiortc_pass() -> None:
    assert _parse_problems() == []


def test_a_browser_video_packet_is_the_same_packet() -> None:
    tx = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    receiver = Receiver(extensions_map())
    ext = one_byte(
        [(1, b"0"), (2, b"f"), (4, b"\x01\x02\x03"), (7, b"\x12\x34"), (5, b"\xff\xff\xfe")], 0
    )
    data = tx.protect(rtp(seq=7, marker=1, timestamp=90_000, extension=ext, payload=b"x" * 900))
    packet = receiver.by_c(data)
    same(packet, receiver.by_aiortc(data))
    assert packet.extensions.mid == "0" and packet.extensions.rtp_stream_id == "f"
    assert packet.extensions.abs_send_time == 0x010203
    assert packet.extensions.transport_sequence_number == 0x1234
    assert packet.extensions.transmission_offset == -2
    assert packet.payload == b"x" * 900 and packet.marker == 1


def test_audio_level_padding_and_csrcs() -> None:
    tx = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    receiver = Receiver(extensions_map())
    data = tx.protect(
        rtp(
            seq=65535,
            payload_type=111,
            timestamp=0xFFFFFFFF,
            ssrc=0xFFFFFFFE,
            csrc=[1, 0xFFFFFFFF],
            extension=two_byte([(6, b"\x9e")], 3),
            payload=b"opus",
            padding=5,
        )
    )
    packet = receiver.by_c(data)
    same(packet, receiver.by_aiortc(data))
    assert packet.extensions.audio_level == (True, 30)
    assert packet.padding_size == 5 and packet.payload == b"opus"
    assert packet.csrc == [1, 0xFFFFFFFF] and packet.ssrc == 0xFFFFFFFE


def test_what_srtp_refuses_is_none_the_same_as_aiortc() -> None:
    tx = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    receiver = Receiver(extensions_map())
    data = tx.protect(rtp(seq=1))
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    assert receiver.by_c(tampered) is None and receiver.by_aiortc(tampered) is None
    assert receiver.by_c(data) is not None and receiver.by_aiortc(data) is not None
    # replayed: the session's replay window refuses it
    assert receiver.by_c(data) is None and receiver.by_aiortc(data) is None
    other = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND, key=bytes(30))
    foreign = other.protect(rtp(seq=2))
    assert receiver.by_c(foreign) is None and receiver.by_aiortc(foreign) is None
    assert receiver.by_c(b"\x80") is None
    assert receiver.by_c(bytes(3000)) is None  # longer than any datagram it reads


def test_an_extension_of_the_wrong_length_drops_the_packet_where_aiortc_would_raise() -> None:
    tx = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    receiver = Receiver(extensions_map())
    for ident, value in ((4, b"\x01\x02"), (6, b"\x01\x02"), (7, b"\x01"), (5, b"\x01")):
        data = tx.protect(rtp(seq=ident, extension=one_byte([(ident, value)], 0)))
        assert receiver.by_c(data) is None
        # aiortc raises struct.error, which its own receive path does not catch
        with pytest.raises(struct.error):
            RtpPacket.parse(receiver.py.unprotect(data), receiver.ext_map)


def test_ids_are_read_at_each_packet_so_a_renegotiated_map_applies() -> None:
    tx = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    ext_map = extensions_map({"urn:ietf:params:rtp-hdrext:sdes:mid": 3})
    receiver = Receiver(ext_map)
    ext = one_byte([(3, b"a"), (9, b"b")], 0)
    assert receiver.by_c(tx.protect(rtp(seq=1, extension=ext))).extensions.mid == "a"
    ext_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=9, uri="urn:ietf:params:rtp-hdrext:sdes:mid")
            ]
        )
    )
    assert receiver.by_c(tx.protect(rtp(seq=2, extension=ext))).extensions.mid == "b"


# an extension as a browser sends it (the id negotiated for its kind, a value of its
# size), or any id with any value (unknown ids, wrong sizes, text that is not UTF-8)
text = st.text("ab0\u00e9", min_size=1, max_size=3).map(lambda t: t.encode())
element = st.one_of(
    st.tuples(st.sampled_from([1, 2, 3]), text),
    st.tuples(st.sampled_from([4, 5]), st.binary(min_size=3, max_size=3)),
    st.tuples(st.just(6), st.binary(min_size=1, max_size=1)),
    st.tuples(st.just(7), st.binary(min_size=2, max_size=2)),
    st.tuples(
        st.integers(0, 15),
        st.one_of(
            st.binary(min_size=1, max_size=4),
            st.sampled_from([b"\xff", b"\xc3", b"\x80\x80"]),  # not UTF-8, not ASCII
        ),
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    marker=st.integers(0, 1),
    payload_type=st.integers(0, 127),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    profile=st.sampled_from(["none", "one", "one", "two", "two", "other"]),
    elements=st.lists(element, max_size=6),
    pad=st.integers(0, 5),
    payload=st.binary(max_size=64),
    padding=st.integers(0, 20),
    cut=st.sampled_from([0, 0, 0, 1, 2, 5]),  # bytes taken off the extension block's end
)
def test_any_packet_comes_out_as_aiortc_reads_it(
    marker: int,
    payload_type: int,
    timestamp: int,
    ssrc: int,
    csrc: list[int],
    profile: str,
    elements: list[tuple[int, bytes]],
    pad: int,
    payload: bytes,
    padding: int,
    cut: int,
) -> None:
    tx = session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    receiver = Receiver(extensions_map())
    extension = b""
    if profile == "one":
        extension = one_byte([(i, v[:16]) for i, v in elements if i], pad)
    elif profile == "two":
        extension = two_byte([(i + 1, v) for i, v in elements], pad)
    elif profile == "other":
        extension = struct.pack("!HH", 0xABAC, 1) + b"\x11\x22\x33\x44"
    if extension and cut:
        block = extension[4:]
        extension = extension[:4] + block[: max(0, len(block) - cut)]  # lengths now lie
    plain = rtp(
        seq=1,
        marker=marker,
        payload_type=payload_type,
        timestamp=timestamp,
        ssrc=ssrc,
        csrc=csrc,
        extension=extension,
        payload=payload,
        padding=padding,
    )
    try:
        data = tx.protect(plain)
    except pylibsrtp.Error:
        assume(False)  # libsrtp will not protect a header this malformed
    by_c, by_aiortc = receiver.by_c(data), receiver.by_aiortc(data)
    if by_aiortc is None:
        assert by_c is None
    else:
        assert by_c is not None
        same(by_c, by_aiortc)


# descriptors as browsers send them (X with I, L, T, K in any mix; 7- or 15-bit picture
# ids) and any bytes at all, cut anywhere
descriptor = st.one_of(
    st.tuples(
        st.integers(0, 0x7F),  # S, PID and the reserved bits; X off
    ).map(lambda t: bytes(t)),
    st.tuples(
        st.integers(0, 0x7F),
        st.integers(0, 0xFF),  # I L T K and reserved
        st.binary(min_size=0, max_size=5),
    ).map(lambda t: bytes([t[0] | 0x80, t[1]]) + t[2]),
    st.binary(max_size=8),
)


@settings(max_examples=500, deadline=None)
@given(descriptor=descriptor, frame=st.binary(max_size=40), cut=st.integers(0, 12))
def test_a_vp8_payload_loses_the_descriptor_aiortc_strips(
    descriptor: bytes, frame: bytes, cut: int
) -> None:
    payload = (descriptor + frame)[: max(0, len(descriptor + frame) - cut)]
    try:
        expected: bytes | None = vp8_depayload(payload)
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(ValueError):
            _rtp_receive.vp8_payload(payload)
    else:
        assert _rtp_receive.vp8_payload(payload) == expected


def test_vp8_descriptors_of_each_length() -> None:
    assert _rtp_receive.vp8_payload(b"\x10abc") == b"abc"
    assert _rtp_receive.vp8_payload(b"\x90\x80\x05abc") == b"abc"  # 7-bit picture id
    assert _rtp_receive.vp8_payload(b"\x90\x80\x81\x23abc") == b"abc"  # 15-bit
    assert _rtp_receive.vp8_payload(b"\x90\xf0\x81\x23\x07\x40abc") == b"abc"  # I L T K
    for cut in (b"", b"\x90", b"\x90\x80", b"\x90\x80\x81", b"\x90\x40", b"\x90\x10"):
        with pytest.raises(ValueError):
            _rtp_receive.vp8_payload(cut)
