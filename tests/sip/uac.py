"""A few lines of SIP user agent client for what sipp cannot express: hand-made
requests over a real UDP socket (wrong tags, strangers' addresses, garbage)."""

from __future__ import annotations

from server.phone import sip
from tests.sip.conftest import UdpPeer

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0\r\n"
)


def request(
    method: str,
    call_id: str,
    *,
    body: bytes = b"",
    to_tag: str = "",
    from_tag: str = "caller",
    cseq: int = 1,
    content_length: int | None = None,
    content_type: str = "application/sdp",
    extra: str = "",
) -> bytes:
    head = (
        f"{method} sip:123456@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{call_id}{method}{cseq}{from_tag}\r\n"
        f"From: <sip:+15550000@127.0.0.1>;tag={from_tag}\r\n"
        f"To: <sip:123456@127.0.0.1>{';tag=' + to_tag if to_tag else ''}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
        f"Contact: <sip:caller@127.0.0.1:5099>\r\nMax-Forwards: 70\r\n{extra}"
    )
    if body:
        head += f"Content-Type: {content_type}\r\n"
    length = len(body) if content_length is None else content_length
    return f"{head}Content-Length: {length}\r\n\r\n".encode() + body


async def final_response(peer: UdpPeer) -> sip.SipMessage:
    """The next final SIP response (RTP on the same socket is skipped)."""
    while True:
        try:
            message = sip.parse(await peer.next())
        except sip.SipParseError:
            continue
        if message.status >= 200:
            return message


async def answered_calls(peer: UdpPeer, port: int, pins: dict[str, str]) -> None:
    """Call `port` once per Call-ID in `pins` (an INVITE each, with that `X-Room-Pin`),
    and only when every call is answered send all their ACKs at once."""
    for call_id, pin in pins.items():
        peer.send(request("INVITE", call_id, body=SDP, extra=f"X-Room-Pin: {pin}\r\n"), port)
    tags: dict[str, str] = {}
    while len(tags) < len(pins):
        ok = await final_response(peer)
        assert ok.status == 200, ok.status
        tags[ok.call_id] = sip.header_param(ok.get("To"), "tag") or ""
    for call_id, tag in tags.items():
        peer.send(request("ACK", call_id, to_tag=tag), port)
