import pytest

from server.phone.sdp import (
    NoCommonCodec,
    NoCommonSecurity,
    SdpError,
    build_answer,
    negotiate,
    parse_offer,
)


def offer(m_line: str, *attributes: str, c_line: str = "c=IN IP4 192.0.2.7") -> bytes:
    lines = ["v=0", "o=- 1 1 IN IP4 192.0.2.7", "s=-", c_line, "t=0 0", m_line, *attributes]
    return ("\r\n".join(lines) + "\r\n").encode()


def test_static_payload_types_without_rtpmap_are_understood() -> None:
    answer = negotiate(parse_offer(offer("m=audio 4000 RTP/AVP 8 0")))
    assert (answer.codec, answer.payload_type, answer.ptime_ms) == ("PCMA", 8, 20)
    assert (answer.remote_address, answer.remote_port) == ("192.0.2.7", 4000)
    assert answer.dtmf_payload_type is None


def test_caller_order_ptime_and_telephone_event_are_kept() -> None:
    answer = negotiate(
        parse_offer(
            offer(
                "m=audio 4000 RTP/AVP 18 0 8 96",
                "a=rtpmap:18 G729/8000",
                "a=rtpmap:96 telephone-event/8000",
                "a=fmtp:96 0-16",
                "a=ptime:30",
            )
        )
    )
    assert (answer.codec, answer.dtmf_payload_type, answer.ptime_ms) == ("PCMU", 96, 30)
    assert answer.samples_per_packet == 240


def test_media_level_connection_overrides_the_session_one() -> None:
    parsed = parse_offer(offer("m=audio 4000 RTP/AVP 0", "c=IN IP4 198.51.100.1"))
    assert parsed.address == "198.51.100.1"


def test_g729_only_has_no_common_codec() -> None:
    with pytest.raises(NoCommonCodec):
        negotiate(parse_offer(offer("m=audio 4000 RTP/AVP 18", "a=rtpmap:18 G729/8000")))


def test_a_dynamic_type_named_pcmu_is_accepted() -> None:
    answer = negotiate(parse_offer(offer("m=audio 4000 RTP/AVP 97", "a=rtpmap:97 PCMU/8000")))
    assert (answer.codec, answer.payload_type) == ("PCMU", 97)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe",
        offer("m=video 4000 RTP/AVP 96"),
        offer("m=audio x RTP/AVP 0"),
        offer("m=audio 4000 RTP/AVP 0", c_line="c=IN IP6 ::1"),
        offer("m=audio 4000 RTP/AVP 300"),
        offer("m=audio 4000 RTP/AVP 0", "a=ptime:soon"),
        offer("m=audio 4000 RTP/AVP 0", c_line=""),
    ],
)
def test_broken_offers_are_sdp_errors(body: bytes) -> None:
    with pytest.raises(SdpError):
        negotiate(parse_offer(body))


def test_answer_names_only_what_was_chosen() -> None:
    answer = negotiate(
        parse_offer(
            offer("m=audio 4000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000", "a=ptime:20")
        )
    )
    text = build_answer(answer, "203.0.113.5", 20002).decode()
    assert "m=audio 20002 RTP/AVP 0 101\r\n" in text
    assert "c=IN IP4 203.0.113.5" in text and "a=ptime:20" in text
    assert "PCMA" not in text
    reparsed = negotiate(parse_offer(text.encode()))
    assert (reparsed.codec, reparsed.dtmf_payload_type) == ("PCMU", 101)


@pytest.mark.parametrize(
    ("lines", "c_line", "answered"),
    [
        ((), "c=IN IP4 192.0.2.1", "sendrecv"),
        (("a=sendonly",), "c=IN IP4 192.0.2.1", "recvonly"),
        (("a=inactive",), "c=IN IP4 192.0.2.1", "inactive"),
        (("a=recvonly",), "c=IN IP4 192.0.2.1", "sendonly"),
        ((), "c=IN IP4 0.0.0.0", "recvonly"),  # the old way to hold (RFC 2543)
    ],
)
def test_the_answer_direction_answers_the_offer(
    lines: tuple[str, ...], c_line: str, answered: str
) -> None:
    answer = negotiate(parse_offer(offer("m=audio 4000 RTP/AVP 0", *lines, c_line=c_line)))
    assert answer.direction == answered
    assert f"a={answered}\r\n" in build_answer(answer, "203.0.113.5", 20002).decode()


@pytest.mark.parametrize("profile", ["RTP/SAVPF", "UDP/TLS/RTP/SAVP", "RTP/SAVP"])
def test_encrypted_transports_without_usable_keys_are_refused(profile: str) -> None:
    with pytest.raises(NoCommonSecurity):
        negotiate(parse_offer(offer(f"m=audio 4000 {profile} 0")))


def test_rtp_avpf_is_plain_rtp() -> None:
    assert negotiate(parse_offer(offer("m=audio 4000 RTP/AVPF 0"))).srtp is None
