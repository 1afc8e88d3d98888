"""Loss repair aiortc does not do for a video receiver (internal 7).

`LayerRepair` NACKs again what stays missing in the layers of a tapped video receiver
(a simulcast camera's, or a single stream's: simulcast_receive.py, their NACK state in
C, `LayerBuffer.missing`), while a loss is outstanding. (Skipping a gap that is never
filled is the layer buffer's own: `_rtp_receive.STALL_S`.)

7. `RTCRtpReceiver._send_rtcp_nack(media_ssrc, lost)`. aiortc NACKs only when a *new*
   gap appears and forgets a loss 128 packets later, so a lost retransmission is never
   asked for again once loss stops (`LayerRepair` asks again on a timer).

`problems()` lists what of these is missing or changed (run by `check()` in
__init__.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from aiortc import RTCRtpReceiver

from server.media.aiortc_internals.base import sending, takes


def still_missing(missing: Iterable[int], outstanding: set[int]) -> tuple[list[int], set[int]]:
    """What was missing at the previous call (`outstanding`) and still is, ascending;
    and what is missing now (the next call's `outstanding`)."""
    now = set(missing)
    return sorted(now & outstanding), now


class LayerRepair:
    """NACKs again for the layers of a tapped video receiver, run only while a loss is
    outstanding. A layer's NACKs go out once, when a packet opens a gap (its
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
        outstanding: dict[int, set[int]] = {}  # the layers there are now (not one replaced)
        for ssrc, layer in list(self._layers.items()):
            again, outstanding[ssrc] = still_missing(
                layer.missing, self._outstanding.get(ssrc, set())
            )
            missing = missing or bool(outstanding[ssrc])
            if again:
                asked += len(again)
                sending.spawn(self._receiver._send_rtcp_nack(ssrc, again))
        self.asked += asked
        self._outstanding = outstanding
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


def problems() -> list[str]:
    found = []
    if not takes(RTCRtpReceiver, "_send_rtcp_nack", "media_ssrc", "lost"):
        found.append("RTCRtpReceiver._send_rtcp_nack(media_ssrc, lost) is gone or changed")
    return found
