"""A subscriber's loss on one forwarded stream, from its receiver reports.

A report's `fraction lost` covers the time since the reporter's previous report, and
Chrome sends one with every NACK: under loss, reports come 20 ms apart, each over a
handful of packets, so single reports read 0, 0.5, 0, 0.75, 0 … on a link that loses a
third. Taken one at a time, the layer choice climbed on a 0 and fell on the next report.

`ReportedLoss` reads them as libwebrtc's loss-based estimator does
(`SendSideBandwidthEstimation::UpdatePacketsLost`): each report's fraction weighted by
the packets expected since the one before (the extended highest sequence numbers'
difference), summed until at least `MIN_PACKETS` are covered; then that is the loss.
"""

from __future__ import annotations

MIN_PACKETS = 20  # libwebrtc's kLimitNumPackets
WRAPPED = 1 << 15  # a jump this large is a restarted stream, not packets expected


class ReportedLoss:
    def __init__(self) -> None:
        self.value = 0.0  # fraction lost over the last MIN_PACKETS or more
        self._highest: int | None = None
        self._lost = 0.0
        self._expected = 0

    def add(self, fraction: float, highest: int) -> bool:
        """One receiver report: its fraction lost (0–1) and the extended highest
        sequence number received. True when `value` was renewed by it."""
        last = self._highest
        expected = highest - last if last is not None else 0
        if last is None or abs(expected) >= WRAPPED:  # the first, or a restarted stream
            self._highest, self._lost, self._expected = highest, 0.0, 0
            return False
        if expected <= 0:  # repeated or reordered: nothing new
            return False
        self._highest = highest
        self._lost += min(max(fraction, 0.0), 1.0) * expected
        self._expected += expected
        if self._expected < MIN_PACKETS:
            return False
        self.value = self._lost / self._expected
        self._lost, self._expected = 0.0, 0
        return True
