"""A datagram too long for SRTP is dropped before aiortc (internal 22).

aioice hands every datagram that is not STUN to its connection's `data_received`, from
any address: the peer's, or a stranger's who knows or sweeps the SFU's media ports.
aiortc's `RTCDtlsTransport._recv_next` unprotects one that looks like SRTP or SRTCP
with pylibsrtp, whose `Session` buffer holds 1500 bytes and raises
`ValueError("packet is too long")` past that, and catches only `pylibsrtp.Error`: the
ValueError ended the transport's receive task and closed the participant's media
connection. One datagram of 1501 bytes, with no key, ended anyone's media (the attack
in tests/security/sfu/test_sfu_abuse.py). No WebRTC sender sends a datagram that long
(a browser keeps its packets under ~1200 bytes for the path's MTU).

`drop_oversized_datagrams()` drops it where aioice hands it over, for every connection
in the process (the C path, server/media/_rtp_receive.c, already refused an SRTP
packet that long; SRTCP and connections without a tapped receiver took aiortc's).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import aioice.ice
import pylibsrtp

from server.media.aiortc_internals.base import needs

MAX_DATAGRAM = 1500  # pylibsrtp's Session buffer


def drop_oversized_datagrams() -> None:
    """From now on, a datagram longer than `MAX_DATAGRAM` reaches no connection's
    aiortc (idempotent)."""
    received = aioice.ice.Connection.data_received
    if getattr(received, "drops_oversized", False):
        return

    @functools.wraps(received)
    def data_received(self: Any, data: bytes, component: int) -> None:
        if len(data) <= MAX_DATAGRAM:
            received(self, data, component)

    data_received.drops_oversized = True  # type: ignore[attr-defined]
    aioice.ice.Connection.data_received = data_received  # type: ignore[method-assign]


def problems() -> list[str]:
    found = needs(
        inspect.getsource(aioice.ice.StunProtocol.datagram_received),
        "aioice's StunProtocol.datagram_received",
        "self.receiver.data_received(data, self.local_candidate.component)",
    )
    if "1500" not in inspect.getsource(pylibsrtp.Session.__init__):
        found.append("pylibsrtp's Session buffer is no longer 1500 bytes")
    return found
