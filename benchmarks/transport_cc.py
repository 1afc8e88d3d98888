"""transport-cc in Python: what its per-packet work would cost the SFU (issue 19).

aiortc 1.16 has no transport-cc (docs/architecture.md, "Congestion control"). To
estimate what sending it to subscribers would add, this times a minimal pure-Python
version of the per-packet work a send-side estimator needs, the way GCC does it:

- on send: a transport-wide sequence number stamped in the header and a send-log entry;
- on feedback (one RTCP transport-cc packet per ~50 packets): parsing the packet
  status chunks and receive deltas, and a delay-gradient (trendline) update per 5 ms
  send group, over a 20-group window.

The baseline, in the same run, is what every forwarded packet already pays for its
SRTP protection (pylibsrtp, a 1,200-byte packet). Not counted: the loss-based
controller, probing (padding) and the pacing that GCC also needs.
"""

from __future__ import annotations

import os
import struct
import time

from pylibsrtp import Policy, Session

TITLE = "transport-cc: its Python work per packet, next to SRTP"
PER_FEEDBACK = 50  # packets a transport-cc feedback covers (~100 ms at 500 kbit/s)
GROUP_MS = 5.0
WINDOW = 20


def feedback(base: int, deltas: list[int]) -> bytes:
    """A transport-cc FCI (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1):
    every packet received, small deltas (one run-length chunk, 1-byte deltas)."""
    count = len(deltas)
    header = struct.pack("!LLHH", 1, 2, base, count) + (0).to_bytes(3, "big") + b"\x00"
    return header + struct.pack("!H", (1 << 13) | count) + bytes(deltas)


def parse(data: bytes) -> list[tuple[int, float | None]]:
    """(transport sequence number, arrival ms or None if lost) for each packet."""
    base, count = struct.unpack_from("!HH", data, 8)
    arrival = int.from_bytes(data[12:15], "big") * 64.0
    pos, statuses = 16, []
    while len(statuses) < count:
        (chunk,) = struct.unpack_from("!H", data, pos)
        pos += 2
        if not chunk >> 15:  # run length
            statuses.extend([(chunk >> 13) & 3] * (chunk & 0x1FFF))
        elif not (chunk >> 14) & 1:  # fourteen 1-bit symbols
            statuses.extend((chunk >> (13 - i)) & 1 for i in range(14))
        else:  # seven 2-bit symbols
            statuses.extend((chunk >> (12 - 2 * i)) & 3 for i in range(7))
    out: list[tuple[int, float | None]] = []
    for i, status in enumerate(statuses[:count]):
        if status == 1:
            arrival += data[pos] * 0.25
            pos += 1
        elif status == 2:
            arrival += struct.unpack_from("!h", data, pos)[0] * 0.25
            pos += 2
        else:
            out.append(((base + i) & 0xFFFF, None))
            continue
        out.append(((base + i) & 0xFFFF, arrival))
    return out


class Trendline:
    """GCC's delay-gradient filter: the slope of smoothed accumulated delay."""

    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []
        self.accumulated = 0.0
        self.smoothed = 0.0

    def update(self, send_delta: float, arrival_delta: float, arrival: float) -> float:
        self.accumulated += arrival_delta - send_delta
        self.smoothed = 0.9 * self.smoothed + 0.1 * self.accumulated
        self.points.append((arrival, self.smoothed))
        if len(self.points) > WINDOW:
            self.points.pop(0)
        n = len(self.points)
        mean_x = sum(x for x, _ in self.points) / n
        mean_y = sum(y for _, y in self.points) / n
        num = sum((x - mean_x) * (y - mean_y) for x, y in self.points)
        den = sum((x - mean_x) ** 2 for x, _ in self.points)
        return num / den if den else 0.0


def transport_cc_us(packets: int) -> float:
    """CPU microseconds per packet: stamp + log on send, parse + trendline on feedback."""
    deltas = [(i * 7) % 40 + 1 for i in range(PER_FEEDBACK)]
    sent: dict[int, tuple[float, int]] = {}
    trend = Trendline()
    began = time.process_time()
    seq = 0
    for round_ in range(packets // PER_FEEDBACK):
        base = seq
        for i in range(PER_FEEDBACK):
            now = round_ * 100.0 + i * 2.0
            sent[seq] = (now, 1200)
            _ = seq.to_bytes(2, "big")  # the header extension's value
            seq = (seq + 1) & 0xFFFF
        group: tuple[float, float] | None = None
        for number, arrival in parse(feedback(base, deltas)):
            log = sent.pop(number, None)
            if log is None or arrival is None:
                continue
            if group is None:
                group = (log[0], arrival)
            elif log[0] - group[0] >= GROUP_MS:
                trend.update(log[0] - group[0], arrival - group[1], arrival)
                group = (log[0], arrival)
    return (time.process_time() - began) / packets * 1e6


def srtp_us(packets: int) -> float:
    """CPU microseconds per packet to SRTP-protect a 1,200-byte RTP packet."""
    policy = Policy(key=os.urandom(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND)
    session = Session(policy=policy)
    payload = os.urandom(1188)
    began = time.process_time()
    for seq in range(packets):
        header = struct.pack("!BBHLL", 0x80, 96, seq & 0xFFFF, seq * 3000, 1234)
        session.protect(header + payload)
    return (time.process_time() - began) / packets * 1e6


async def run(quick: bool) -> str:
    packets = 20_000 if quick else 200_000
    load = os.getloadavg()[0]
    srtp = srtp_us(packets)
    twcc = transport_cc_us(packets)
    return (
        f"{packets} packets each; load average {load:.1f} at the start.\n\n"
        "| work per packet | CPU µs | vs SRTP |\n|---|---:|---:|\n"
        f"| SRTP protect, 1,200 bytes (every forwarded packet pays it) | {srtp:.2f} | 1.0x |\n"
        f"| transport-cc: stamp, send log, feedback parse, trendline | {twcc:.2f} "
        f"| {twcc / srtp:.1f}x |\n\n"
        "- What this leaves out (the loss-based controller, probing with padding, pacing) "
        'comes on top; see docs/architecture.md, "Congestion control", for what else '
        "transport-cc would take.\n"
    )
