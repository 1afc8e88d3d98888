"""Keeps a publisher's video flowing into the SFU through packet loss.

aiortc's video receiver NACKs a lost packet only when a *new* gap appears, and forgets
it 128 packets later. A retransmission lost right before the network heals is
therefore never asked for again, and aiortc's jitter buffer then waits at that packet
until 512 newer ones have arrived (about 10 s at 500 kbit/s): RTP keeps arriving, no
frame comes out, and the health monitor steps the participant down (`no_video_rtp`).

Every video the SFU receives, a simulcast camera's layers and a single stream alike,
is tapped into layer buffers (aiortc_internals: `tap_simulcast`, `tap_video`) that fix
both halves:
- while a loss is outstanding, what is still missing is NACKed again every
  `RENACK_SECONDS` (`LayerRepair`: a lost NACK or a lost retransmission gets another
  chance while the sender still has the packet);
- a layer that has had packets but no frame for `_rtp_receive.STALL_S` (half a second)
  gives the missing packet up: it skips to the next whole frame after the gap and marks
  that frame `after_gap`, so the publication's subscribers wait for a keyframe, which
  the publication asks the publisher for through its limiter (`Publication.frames_lost`,
  `layer_frames_lost`; keyframes.py: at most one request a second).
"""

from __future__ import annotations

RENACK_SECONDS = 0.1
