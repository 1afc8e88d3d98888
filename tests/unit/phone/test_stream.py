"""SIP framing on a TCP/TLS stream: by Content-Length, whatever the segmentation."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.phone import sip
from server.phone.stream import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    FramingError,
    StreamFramer,
)
from tests.sip.uac import SDP, request

MESSAGES = [request("INVITE", "a", body=SDP), request("ACK", "a", to_tag="t"), request("BYE", "a")]
STREAM = b"".join(MESSAGES)


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM)), max_size=20))
def test_messages_come_out_whole_however_the_stream_is_cut(cuts: list[int]) -> None:
    framer = StreamFramer()
    out: list[bytes] = []
    start = 0
    for cut in sorted(set(cuts)) + [len(STREAM)]:
        out += framer.feed(STREAM[start:cut])
        start = cut
    assert out == MESSAGES
    assert sip.parse(out[0]).body == SDP


def test_keepalive_pings_are_counted_and_skipped() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n" + MESSAGES[1] + b"\r\n\r\n") == [MESSAGES[1]]
    assert framer.pings == 2


@pytest.mark.parametrize(
    "data",
    [
        b"INVITE sip:x SIP/2.0\r\n" + b"X: " + b"a" * MAX_HEADER_BYTES,  # headers never end
        b"INVITE sip:x SIP/2.0\r\nX: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n",
        f"INVITE sip:x SIP/2.0\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode(),
        b"INVITE sip:x SIP/2.0\r\nl: -1\r\n\r\n",
    ],
    ids=["endless-headers", "long-headers", "huge-body", "bad-length"],
)
def test_what_breaks_a_limit_is_a_framing_error(data: bytes) -> None:
    with pytest.raises(FramingError):
        StreamFramer().feed(data)
