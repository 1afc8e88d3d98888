"""How much a subscriber's link has room for resends: what its estimate leaves after
the media the SFU sends it.

A resend is more bytes on the link whose loss asked for it. Where the loss is random
(Wi-Fi), the link has room and resends repair it; where the link is full (a cap, a
congested uplink), the loss *is* the overflow, and each resend pushes out another
packet, which is NACKed in turn. Measured in Chromium under a 300 kbit/s cap
(tests/e2e/test_network_faults.py): with resends bounded only by the stream's own rate,
the SFU resent 74–85 % as many packets as it sent (three runs), and the subscriber's loss never fell.

So, as libwebrtc bounds a sender's retransmissions by its bandwidth estimate
(`RetransmissionRateLimiter`), each subscriber's resends, on all its streams, share one
allowance: its latest REMB (bit/s) less what was sent to it (media, resends and padding
alike), accrued over time and kept within `BURST_SECONDS` of the estimate either way. A
receive-side estimate does not fall for random loss, so repair stays; at a cap it sits
at what the link carries, and resends stop once the media fills it. Before the first
REMB there is no bound here (each stream's own resend budget still applies).
"""

from __future__ import annotations

from server.media.simulcast_choice import Estimate

BURST_SECONDS = 0.25


class ResendRoom:
    def __init__(self, remb: Estimate) -> None:
        self._remb = remb  # the subscriber's estimates (bit/s)
        self.sent = 0  # bytes sent to the subscriber, counted by its outputs
        self._counted = 0  # `sent` when the allowance was last brought up to date
        self._at: float | None = None
        self._allowance = 0.0  # bytes

    def take(self, size: int, now: float) -> bool:
        """True (and `size` counted against the allowance) if a resend of `size` bytes
        fits in what the estimate leaves now."""
        estimate = self._remb.value
        if estimate is None:
            return True
        limit = estimate / 8 * BURST_SECONDS
        if self._at is not None:
            earned = estimate / 8 * max(0.0, now - self._at)
            allowance = self._allowance + earned - (self.sent - self._counted)
            self._allowance = min(max(allowance, -limit), limit)
        self._at, self._counted = now, self.sent
        if self._allowance < size:
            return False
        self.sent += size  # taken from the allowance when it is next brought up to date
        return True
