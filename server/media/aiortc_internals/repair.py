"""Loss repair aiortc does not do for a video receiver (internals 7, 8).

`VideoRepair.skip_gap` moves a video jitter buffer (8. in receive.py) past a gap.
`LayerRepair` does `VideoRepair.renack` for each layer of a simulcast receiver (12. in
simulcast_receive.py: its NACK state in C, `LayerBuffer.missing`), while a loss is
outstanding.

7. `RTCRtpReceiver._RTCRtpReceiver__nack_generator` (a `NackGenerator`: `missing`, the
   set of lost sequence numbers, and `max_seq`) and `RTCRtpReceiver._send_rtcp_nack(
   media_ssrc, lost)`. aiortc NACKs only when a *new* gap appears and forgets a loss
   128 packets later, so a lost retransmission is never asked for again once loss
   stops (`VideoRepair.renack` asks again on a timer).

`problems()` lists what of these is missing or changed (run by `check()` in
__init__.py).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.utils import uint16_add

from server.media.aiortc_internals.base import (
    JITTER_ATTR,
    NACK_ATTR,
    AiortcInternalsChanged,
    sending,
    takes,
    unconnected,
)


def still_missing(missing: Iterable[int], outstanding: set[int]) -> tuple[list[int], set[int]]:
    """What was missing at the previous call (`outstanding`) and still is, ascending;
    and what is missing now (the next call's `outstanding`)."""
    now = set(missing)
    return sorted(now & outstanding), now


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
        again, self._outstanding = still_missing(self._nack.missing, self._outstanding)
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


class LayerRepair:
    """`VideoRepair.renack` for the layers of a simulcast receiver, run only while a loss
    is outstanding. A layer's NACKs go out once, when a packet opens a gap (its
    `LayerBuffer`, in C): a retransmission lost too was never asked for again, and the
    layer stalled until its own skip and a keyframe (`STALL_S`, half a second).

    `lost()` (a NACK went out) starts `check` every `interval` seconds: it NACKs again,
    per layer, what was already missing at the check before (so each packet has had an
    interval for its first retransmission), and goes on only while something is missing
    and packets still come (not for a publisher that stopped or a closed connection).
    No loss, no timer: the receive path wakes for nothing more."""

    def __init__(
        self, receiver: RTCRtpReceiver, layers: Mapping[int, Any], interval: float
    ) -> None:
        self._receiver = receiver
        self._layers = layers  # SSRC -> LayerBuffer (its `missing`, its `max_seq`)
        self._interval = interval
        self._outstanding: dict[int, set[int]] = {}
        self._newest: dict[int, Any] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.asked = 0  # packets NACKed again

    @property
    def pending(self) -> bool:
        """Whether a check is due."""
        return self._timer is not None

    def lost(self) -> None:
        """A NACK went out: check again in an interval, if no check is due."""
        if self._timer is None:
            self._newest = self._newests()
            self._timer = asyncio.get_running_loop().call_later(self._interval, self.check)

    def check(self) -> int:
        """NACK again what is still missing since the last check; returns how many."""
        self.stop()
        asked = 0
        missing = False
        for ssrc, layer in list(self._layers.items()):
            again, self._outstanding[ssrc] = still_missing(
                layer.missing, self._outstanding.get(ssrc, set())
            )
            missing = missing or bool(self._outstanding[ssrc])
            if again:
                asked += len(again)
                sending.spawn(self._receiver._send_rtcp_nack(ssrc, again))
        self.asked += asked
        newest = self._newests()
        if missing and newest != self._newest:
            self._newest = newest
            self._timer = asyncio.get_running_loop().call_later(self._interval, self.check)
        else:
            self._outstanding.clear()
        return asked

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _newests(self) -> dict[int, Any]:
        return {ssrc: layer.max_seq for ssrc, layer in self._layers.items()}


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
