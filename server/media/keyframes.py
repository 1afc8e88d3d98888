"""How often the SFU asks a publisher for a keyframe: at most once per interval.

Every subscriber of a video publication can ask for a keyframe (a PLI or FIR when its
decoder is lost, a joiner, a subscriber resuming after a stall), and so can the SFU
itself. Forwarded one for one they would make the publisher send a keyframe for each:
a subscriber that can never decode (E2EE without the key) sends a PLI for every frame,
and with the former 0.5 s debounce the SFU passed ~2 keyframe requests a second to the
publisher (measured, issue 19), each costing it a keyframe, which is larger than a
delta frame, sent to the whole room.

So requests are coalesced per publisher, as mediasoup's `keyFrameRequestDelay` (when
set) and LiveKit's PLI throttle (1 s for its mid and high layers) do: the first one goes at once, those
that come within `KEYFRAME_INTERVAL_SECONDS` of the last one sent are merged into a
single request sent when the interval ends, and a keyframe arriving in the meantime
answers them all. A room of any size then costs the publisher at most one keyframe
request a second.

The limiter is a pure function of (state, observation, now); the publication
(forwarding.py) owns the clock and the timer.
"""

from __future__ import annotations

from dataclasses import dataclass

KEYFRAME_INTERVAL_SECONDS = 1.0


@dataclass
class KeyframeLimiter:
    """Per publisher: when a keyframe request may go upstream."""

    interval: float = KEYFRAME_INTERVAL_SECONDS
    last_sent: float | None = None
    pending: bool = False  # a request was held back and not yet answered by a keyframe

    def allows(self, now: float) -> bool:
        """Whether a request made at `now` may go now. If not, it is remembered: one
        request goes at `retry_at()` for all that were held back."""
        if self.last_sent is None or now - self.last_sent >= self.interval:
            return True
        self.pending = True
        return False

    def sent(self, now: float) -> None:
        """A request went to the publisher at `now`."""
        self.last_sent = now
        self.pending = False

    def keyframe(self) -> None:
        """A keyframe came from the publisher: it answers every request held back."""
        self.pending = False

    def retry_at(self) -> float | None:
        """When the requests held back may go as one, or None if none is waiting."""
        if not self.pending or self.last_sent is None:
            return None
        return self.last_sent + self.interval
