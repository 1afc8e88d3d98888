"""Keeps a publisher's video flowing into the SFU through packet loss.

aiortc's video receiver NACKs a lost packet only when a *new* gap appears, and forgets
it 128 packets later. A retransmission lost right before the network heals is
therefore never asked for again, and aiortc's jitter buffer then waits at that packet
until 512 newer ones have arrived (about 10 s at 500 kbit/s): RTP keeps arriving, no
frame comes out, and the health monitor steps the participant down (`no_video_rtp`).

`repair_video` runs beside each single-stream video receiver and fixes both halves (a
simulcast receiver's layers are NACKed again by their tap, `LayerRepair`, at the same
interval, and skip a stall by themselves):
- every `RENACK_SECONDS` it NACKs again what is still missing (a lost NACK or a lost
  retransmission gets another chance while the sender still has the packet);
- when no frame has come out for `STALL_SECONDS` although packets keep arriving, the
  missing packet is given up: the jitter buffer skips to the next whole frame after
  the gap, subscribers wait for a keyframe, and the publisher is asked for one (PLI).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from server.media.aiortc_internals import VideoRepair
from server.media.forwarding import Publication

log = logging.getLogger("pairwise.media.loss_repair")

RENACK_SECONDS = 0.1
STALL_SECONDS = 1.0


async def repair_video(
    repair: VideoRepair, media_ssrc: Callable[[], int | None], publication: Publication
) -> None:
    """Run until cancelled (when the receiver's connection closes)."""
    newest = repair.newest
    moved_at = started = time.monotonic()
    while True:
        await asyncio.sleep(RENACK_SECONDS)
        now = time.monotonic()
        if repair.newest != newest:
            newest, moved_at = repair.newest, now
        ssrc = media_ssrc()
        if ssrc is None:
            continue
        await repair.renack(ssrc)
        last_frame = max(publication.last_frame_at or started, started)
        arriving = now - moved_at <= 2 * RENACK_SECONDS
        if arriving and now - last_frame >= STALL_SECONDS:
            skipped = repair.skip_gap()
            publication.frames_lost()
            if skipped:
                started = now  # give the frames behind the gap a moment to come out
                log.info(
                    "video stalled at a lost packet; skipped to the next frame",
                    extra={"room": publication.room, "identity": publication.identity},
                )
