import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.phone import sip
from server.phone.uas import mask_number

INVITE = (
    b"INVITE sip:123456@gw.example SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc;rport\r\n"
    b"v: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKdef\r\n"
    b"f: <sip:+4930123@trunk>;tag=t1\r\n"
    b"To: <sip:123456@gw.example>\r\n"
    b"i: call-1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Subject: a folded\r\n header\r\n"
    b"X-Room-Pin: 424242\r\n"
    b"l: 4\r\n\r\nv=0\r\nignored"
)


def test_parse_reads_compact_and_folded_headers_and_cuts_the_body() -> None:
    message = sip.parse(INVITE)
    assert (message.method, message.uri) == ("INVITE", "sip:123456@gw.example")
    assert message.call_id == "call-1" and message.cseq == (7, "INVITE")
    assert len(message.get_all("Via")) == 2 and message.branch == "z9hG4bKabc"
    assert message.get("subject") == "a folded header"
    assert message.get("x-room-pin") == "424242"
    assert message.body == b"v=0\r"


def test_response_copies_the_transaction_headers_and_adds_our_tag() -> None:
    request = sip.parse(INVITE)
    reply = sip.parse(sip.response(request, 180, to_tag="gw1").serialise())
    assert (reply.status, reply.reason) == (180, "Ringing")
    assert reply.get_all("Via") == request.get_all("Via")
    assert sip.header_param(reply.get("To"), "tag") == "gw1"
    assert reply.call_id == "call-1" and reply.get("CSeq") == "7 INVITE"


def test_uri_user() -> None:
    assert sip.uri_user("sip:424242@gw.example;user=phone") == "424242"
    assert sip.uri_user("<sips:+4930@x>") == "+4930"
    assert sip.uri_user("sip:gw.example") == ""


@given(st.binary(max_size=2000))
def test_any_bytes_parse_or_raise_a_parse_error(data: bytes) -> None:
    with contextlib.suppress(sip.SipParseError):
        sip.parse(data)


COMPLETE = INVITE.index(b"\r\n\r\n") + 4 + 4  # headers, blank line, 4 body bytes


@given(st.integers(min_value=0, max_value=COMPLETE - 1))
def test_every_truncation_of_a_message_is_a_parse_error(cut: int) -> None:
    try:
        message = sip.parse(INVITE[:cut])
    except sip.SipParseError:
        return
    raise AssertionError(f"truncated message parsed: {message}")


@given(st.lists(st.tuples(st.integers(0, len(INVITE) - 1), st.integers(0, 255)), max_size=8))
def test_corrupted_messages_parse_or_raise_a_parse_error(flips: list[tuple[int, int]]) -> None:
    data = bytearray(INVITE)
    for index, value in flips:
        data[index] = value
    try:
        message = sip.parse(bytes(data))
        sip.parse(message.serialise())  # whatever parsed also serialises back
    except sip.SipParseError:
        pass


@pytest.mark.parametrize(
    ("header", "name", "caller"),
    [
        ('"Maya Lopez" <sip:+4930123456567@trunk>;tag=1', "Maya Lopez", "…567"),
        ("Maya <sip:+4930123456567@trunk>;tag=1", "Maya", "…567"),
        ('"Say \\"hi\\"" <sip:123@trunk>', 'Say "hi"', "123"),
        ("<sip:+4930123456567@trunk>;tag=1", "", "…567"),
        ("sip:+4930123456567@trunk;tag=1", "", "…567"),
        ('"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1', "", "anonymous"),
        ("<sip:anonymous@anonymous.invalid>;tag=1", "", "anonymous"),
        ('"\x07" <sip:@trunk>', "", "anonymous"),
    ],
)
def test_callers_are_named_by_their_display_name_or_masked_number(
    header: str, name: str, caller: str
) -> None:
    assert sip.display_name(header) == name
    assert mask_number(header) == caller
