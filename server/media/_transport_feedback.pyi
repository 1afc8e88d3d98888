"""Types of the C transport-cc feedback (server/media/_transport_feedback.c); what it
reports: server/media/transport_feedback.py."""

from collections.abc import Sequence

BACK_WINDOW_US: int
MAX_BYTES: int
MAX_MISSING: int
MAX_RUN: int
REFERENCE_US: int
REFERENCE_WRAP: int
TICK_US: int

class TransportFeedback:
    """The transport-wide sequence numbers one transport received, and the feedback
    packets that report them."""

    media_ssrc: int  # the SSRC of the latest packet: the feedback names it
    count: int  # feedback packets made (their 8-bit count wraps)
    kept: int  # arrivals kept (the back window's)
    def record(self, seq: int, arrival_us: int, ssrc: int) -> None:
        """A packet with transport-wide sequence number `seq` (16 bits) arrived at
        `arrival_us` (per packet)."""

    def feedbacks(self, sender_ssrc: int) -> list[bytes]:
        """The RTCP feedback packets for what arrived since the last call (none when
        nothing did)."""

def status_chunks(symbols: Sequence[int]) -> list[int]:
    """The 16-bit status chunks `symbols` (0 not received, 1 small delta, 2 large) pack
    into, added one by one as a feedback adds them."""
