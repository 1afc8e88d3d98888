"""aiortc's per-packet bookkeeping of a received stream, with its 16-bit sequence number
helpers (`uint16_gt`, `uint16_add`) written out in place (internal 21).

The SFU runs `NackGenerator.add` and `StreamStatistics.add` for every packet a publisher
sends (direct_receive.py), and each called `uint16_gt` once or more (and the NACK
generator `truncate`, which copies its set of missing packets, every packet): three to
five Python calls per packet that do one comparison each. `FlatNackGenerator` and
`FlatStreamStatistics` are the same classes with `add` doing the same in one call; what
they keep and how aiortc reads it (`missing`, `max_seq`, the statistics' counters for
receiver reports and getStats) is unchanged. `problems()` checks that aiortc's `add`
methods still do what these mirror (run by `check()` in __init__.py).
"""

from __future__ import annotations

import inspect
import time
from typing import Any

from aiortc import rtcrtpreceiver
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.utils import uint16_gt

from server.media.aiortc_internals.base import needs

HISTORY = rtcrtpreceiver.RTP_HISTORY_SIZE  # losses further back than this are forgotten


def newer(a: int, b: int) -> bool:
    """aiortc's `uint16_gt(a, b)` for 16-bit sequence numbers: `a` is after `b`."""
    return 0 < (a - b) & 0xFFFF < 0x8000


class FlatNackGenerator(NackGenerator):
    """aiortc's `NackGenerator` with `add` in one call."""

    def add(self, packet: Any) -> bool:
        seq = packet.sequence_number
        max_seq = self.max_seq
        if max_seq is None:
            self.max_seq = seq
            return False
        missed = False
        missing = self.missing
        if 0 < (seq - max_seq) & 0xFFFF < 0x8000:  # newer: the ones between are missing
            lost = (max_seq + 1) & 0xFFFF
            while lost != seq:
                missing.add(lost)
                missed = True
                lost = (lost + 1) & 0xFFFF
            self.max_seq = max_seq = seq
        else:
            missing.discard(seq)
        if missing:  # aiortc's truncate: forget losses more than HISTORY behind
            oldest = (max_seq - HISTORY) & 0xFFFF
            for old in [m for m in missing if 0 < (oldest - m) & 0xFFFF < 0x8000]:
                missing.discard(old)
        return missed


class FlatStreamStatistics(StreamStatistics):
    """aiortc's `StreamStatistics` with `add` in one call."""

    def add(self, packet: Any) -> None:
        seq = packet.sequence_number
        max_seq = self.max_seq
        self.packets_received += 1
        if self.base_seq is None:
            self.base_seq = seq
        if max_seq is None or 0 < (seq - max_seq) & 0xFFFF < 0x8000:  # in order
            arrival = int(time.time() * self._clockrate)
            if max_seq is not None and seq < max_seq:
                self.cycles += 1 << 16
            self.max_seq = seq
            timestamp = packet.timestamp
            if timestamp != self._last_timestamp and self.packets_received > 1:
                last_arrival: int = self._last_arrival  # type: ignore[assignment]
                diff = abs((arrival - last_arrival) - (timestamp - self._last_timestamp))
                self._jitter_q4 += diff - ((self._jitter_q4 + 8) >> 4)
            self._last_arrival = arrival
            self._last_timestamp = timestamp


def problems() -> list[str]:
    found = needs(
        inspect.getsource(NackGenerator.add),
        "NackGenerator.add",
        "if self.max_seq is None:",
        "if uint16_gt(packet.sequence_number, self.max_seq):",
        "seq = uint16_add(self.max_seq, 1)",
        "while uint16_gt(packet.sequence_number, seq):",
        "self.missing.add(seq)",
        "self.max_seq = packet.sequence_number",
        "self.missing.discard(packet.sequence_number)",
        "self.truncate()",
    )
    found += needs(
        inspect.getsource(NackGenerator.truncate),
        "NackGenerator.truncate",
        "min_seq = uint16_add(self.max_seq, -RTP_HISTORY_SIZE)",
        "if uint16_gt(min_seq, seq):",
        "self.missing.discard(seq)",
    )
    found += needs(
        inspect.getsource(StreamStatistics.add),
        "StreamStatistics.add",
        "in_order = self.max_seq is None or uint16_gt(",
        "self.packets_received += 1",
        "if self.base_seq is None:",
        "arrival = int(time.time() * self._clockrate)",
        "if self.max_seq is not None and packet.sequence_number < self.max_seq:",
        "self.cycles += 1 << 16",
        "if packet.timestamp != self._last_timestamp and self.packets_received > 1:",
        "self._jitter_q4 += diff - ((self._jitter_q4 + 8) >> 4)",
        "self._last_timestamp = packet.timestamp",
    )
    if any(
        newer(a, b) != uint16_gt(a, b)
        for a in (0, 1, 0x7FFF, 0x8000, 0xFFFF)
        for b in (0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF)
    ):
        found.append("aiortc's uint16_gt no longer means what newer() does")
    return found
