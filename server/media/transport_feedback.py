"""transport-cc feedback for what the SFU receives: the arrival time of every packet that
carries a transport-wide sequence number, sent back to its sender
(draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1, RTCP RTPFB FMT 15).

With it a publishing browser runs its own send-side estimator (Google congestion control:
delay gradient, loss, probing) on its uplink, instead of obeying the receive-side estimate
aiortc would send it as REMB. The SFU estimates nothing here: it only reports.

What it reports follows libwebrtc's receiver (`TransportSequenceNumberFeedbackGenerator`):

- every `INTERVAL`, one feedback from the first packet not yet reported (lost or not)
  to the newest received, more than one when they do not fit `MAX_BYTES`, a receive
  delta in ±8.19 s or 65,535 statuses;
- a packet that arrives after a feedback that reported it lost (reordered) moves the
  next feedback's start back to it: the packets from there are reported again, now with
  it received (the sender reads a repeat of a received packet as nothing new);
- arrivals older than `BACK_WINDOW_US` behind the newest are forgotten once reported,
  and a packet older than those comes too late to be reported at all;
- each feedback's reference time is its first received packet's arrival in 64 ms units
  (24 bits, wrapping), and each receive delta is rounded to 250 µs from the time the
  previous delta reached, so rounding never accumulates;
- status chunks: a run length (13 bits) where one status repeats, else a vector of
  fourteen 1-bit or seven 2-bit statuses (a large or negative delta needs 2 bits).

`TransportFeedback` is in C (media/_transport_feedback.c): `record` runs for every packet
a publisher sends and `feedbacks` about ten times a second per publisher; in Python the
feedback's building was 12 % of the SFU's time receiving one 720p simulcast publisher
(py-spy). Pure: the caller passes arrival times in µs from any monotonic clock and
sends the bytes (aiortc_internals/direct_receive.py).
"""

from __future__ import annotations

from server.media._transport_feedback import (
    BACK_WINDOW_US,
    MAX_BYTES,
    REFERENCE_US,
    REFERENCE_WRAP,
    TransportFeedback,
    status_chunks,
)

INTERVAL = 0.1  # seconds between feedbacks: libwebrtc's default (it adapts 50-250 ms)
URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

__all__ = [
    "BACK_WINDOW_US",
    "INTERVAL",
    "MAX_BYTES",
    "REFERENCE_US",
    "REFERENCE_WRAP",
    "URI",
    "TransportFeedback",
    "status_chunks",
]
