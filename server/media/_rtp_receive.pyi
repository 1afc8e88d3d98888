"""Types of the C receive path (server/media/_rtp_receive.c)."""

from typing import Any

def unprotect_parse(session: int, unprotect: int, data: bytes, ids: Any) -> Any:
    """One SRTP packet unprotected (libsrtp's `srtp_unprotect` at address `unprotect` on
    the srtp_t at `session`) and parsed as aiortc's `RtpPacket.parse` with the header
    extension ids of `ids` would; None where either fails."""

def classes(packet: type, extensions: type) -> None:
    """The classes `unprotect_parse` makes: aiortc's RtpPacket and HeaderExtensions."""

def vp8_payload(payload: bytes) -> bytes:
    """A VP8 RTP payload without its payload descriptor, as aiortc's `vp8_depayload`;
    ValueError where the descriptor is cut short."""

def socket_stamp_ns(fd: int) -> int:
    """The kernel's receive time (wall-clock ns, SIOCGSTAMPNS) of the last datagram read
    from socket `fd`, or -1 where it has none (the first call turns stamping on)."""
