"""Loss repair aiortc does not do for a video receiver (internals 7, 8).

`VideoRepair.skip_gap` moves a video jitter buffer (8. in receive.py) past a gap.

7. `RTCRtpReceiver._RTCRtpReceiver__nack_generator` (a `NackGenerator`: `missing`, the
   set of lost sequence numbers, and `max_seq`) and `RTCRtpReceiver._send_rtcp_nack(
   media_ssrc, lost)`. aiortc NACKs only when a *new* gap appears and forgets a loss
   128 packets later, so a lost retransmission is never asked for again once loss
   stops (`VideoRepair.renack` asks again on a timer).

`problems()` lists what of these is missing or changed (run by `check()` in
__init__.py).
"""

from __future__ import annotations

import inspect

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.utils import uint16_add

from server.media.aiortc_internals.base import (
    JITTER_ATTR,
    NACK_ATTR,
    AiortcInternalsChanged,
    takes,
    unconnected,
)


class VideoRepair:
    """Loss repair for one video receiver that aiortc does not do itself."""

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        nack, jitter = getattr(receiver, NACK_ATTR, None), getattr(receiver, JITTER_ATTR, None)
        if not isinstance(nack, NackGenerator) or not isinstance(jitter, JitterBuffer):
            raise AiortcInternalsChanged("not a video RTCRtpReceiver, or its internals changed")
        self._receiver = receiver
        self._nack = nack
        self._jitter = jitter
        self._outstanding: set[int] = set()

    @property
    def newest(self) -> int | None:
        """The highest sequence number received so far (changes while packets arrive)."""
        return self._nack.max_seq

    async def renack(self, media_ssrc: int) -> int:
        """NACK again every packet that was already missing at the previous call (so a
        packet gets at least one call's interval for its first retransmission); returns
        how many were asked for."""
        missing = set(self._nack.missing)
        again = sorted(missing & self._outstanding)
        self._outstanding = missing
        if again:
            await self._receiver._send_rtcp_nack(media_ssrc, again)
        return len(again)

    def skip_gap(self) -> bool:
        """Drop the packets before the first whole frame after the buffer's first gap.

        A whole frame starts at a packet whose predecessor is present and belongs to
        another frame (another timestamp). Returns False (changing nothing) when there
        is no gap or no such frame yet.
        """
        skipped = skip_gap_in(self._jitter, self._nack)
        self._outstanding.difference_update(skipped)
        return bool(skipped)


def skip_gap_in(jitter: JitterBuffer, nack: NackGenerator) -> list[int]:
    """VideoRepair.skip_gap on one buffer; returns the sequence numbers dropped."""
    if jitter._origin is None:
        return []
    capacity = jitter._capacity
    slots = [jitter._packets[(jitter._origin + i) % capacity] for i in range(capacity)]
    gap = next((i for i, packet in enumerate(slots) if packet is None), None)
    if gap is None:
        return []
    for i in range(gap + 2, capacity):
        packet, before = slots[i], slots[i - 1]
        if packet is not None and before is not None and packet.timestamp != before.timestamp:
            skipped = [uint16_add(jitter._origin, n) for n in range(i)]
            jitter.remove(i)
            nack.missing.difference_update(skipped)
            return skipped
    return []


def problems() -> list[str]:
    found = []
    if not takes(RTCRtpReceiver, "_send_rtcp_nack", "media_ssrc", "lost"):
        found.append("RTCRtpReceiver._send_rtcp_nack(media_ssrc, lost) is gone or changed")
    if "self.missing" not in inspect.getsource(NackGenerator.add):
        found.append("NackGenerator no longer keeps the lost packets in .missing")
    if not takes(JitterBuffer, "remove", "count"):
        found.append("JitterBuffer.remove(count) is gone or changed")
    with unconnected() as pc:
        try:
            repair = VideoRepair(pc.addTransceiver("video").receiver)
            jitter = repair._jitter
            if not isinstance(jitter._packets, list) or jitter._capacity != len(jitter._packets):
                found.append("JitterBuffer._packets/_capacity changed")
            if jitter._origin is not None or repair.newest is not None:
                found.append("a fresh JitterBuffer/NackGenerator no longer starts empty")
            if not isinstance(jitter._is_video, bool) or not jitter._is_video:
                found.append("JitterBuffer._is_video changed")
            if not isinstance(repair._nack.missing, set):
                found.append("NackGenerator.missing is no longer a set")
        except AiortcInternalsChanged as exc:
            found.append(str(exc))
    return found
