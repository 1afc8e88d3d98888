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

`TransportFeedback.record` is the per-packet part (one list append); `feedbacks` does
the rest, about ten times a second. Pure: the caller passes arrival times in µs from
any monotonic clock and sends the bytes (aiortc_internals/direct_receive.py).
"""

from __future__ import annotations

import struct

INTERVAL = 0.1  # seconds between feedbacks: libwebrtc's default (it adapts 50-250 ms)
BACK_WINDOW_US = 500_000  # arrivals kept behind the newest, for reordered packets
MAX_BYTES = 1_200  # one feedback packet, RTCP header included: fits one datagram
URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RTCP_RTPFB = 205
FMT_TRANSPORT_CC = 15

TICK_US = 250  # a receive delta's unit
REFERENCE_US = 64_000  # the reference time's unit
REFERENCE_WRAP = 1 << 24
MAX_MISSING = 0x7FFE  # libwebrtc's limit on missing packets reported before the first
MAX_STATUSES = 0xFFFF
HEADER_BYTES = 20  # RTCP header, both SSRCs, base, count, reference time, packet count

NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA = 0, 1, 2
MAX_RUN = 0x1FFF


class TransportFeedback:
    """The transport-wide sequence numbers one transport received, and the feedback
    packets that report them."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, int]] = []  # (16-bit seq, arrival µs), unread
        self.media_ssrc = 0  # the SSRC of the latest packet: the feedback names it
        self._arrivals: dict[int, int] = {}  # unwrapped seq → arrival (µs)
        self._last_seq: int | None = None  # the latest unwrapped seq
        self._start: int | None = None  # the first seq the next feedback reports
        self._end = 0  # one past the highest seq received
        self._floor: int | None = None  # seqs below are forgotten: too late to report
        self._newest = 0  # the latest arrival (µs)
        self.count = 0  # feedback packets made (their 8-bit count wraps)

    def record(self, seq: int, arrival_us: int, ssrc: int) -> None:
        """A packet with transport-wide sequence number `seq` arrived (per packet)."""
        self._pending.append((seq, arrival_us))
        self.media_ssrc = ssrc

    def feedbacks(self, sender_ssrc: int) -> list[bytes]:
        """The RTCP feedback packets for what arrived since the last call (none when
        nothing did)."""
        self._take_pending()
        start = self._start
        if start is None:
            return []
        arrivals = self._arrivals
        received = sorted(seq for seq in arrivals if seq >= start)
        packets = []
        while received:
            packet, used = self._packet(sender_ssrc, start, received)
            packets.append(packet)
            start = received[used - 1] + 1
            received = received[used:]
        self._start = max(start, self._end)
        self._forget_old()
        return packets

    def _take_pending(self) -> None:
        pending, self._pending = self._pending, []
        arrivals, floor = self._arrivals, self._floor
        for seq16, arrival in pending:
            last = self._last_seq
            seq = seq16 if last is None else last + ((seq16 - last + 0x8000) & 0xFFFF) - 0x8000
            self._last_seq = seq
            if (floor is not None and seq < floor) or seq in arrivals:
                continue  # too late to report, or a duplicate (the first arrival counts)
            arrivals[seq] = arrival
            if self._start is None or seq < self._start:
                self._start = seq
            self._end = max(self._end, seq + 1)
            self._newest = max(self._newest, arrival)

    def _forget_old(self) -> None:
        limit = self._newest - BACK_WINDOW_US
        old = [seq for seq, arrival in self._arrivals.items() if arrival < limit]
        for seq in old:
            del self._arrivals[seq]
        if old:
            floor = max(old) + 1
            self._floor = floor if self._floor is None else max(self._floor, floor)

    def _packet(self, sender_ssrc: int, start: int, received: list[int]) -> tuple[bytes, int]:
        """One feedback packet from `start`, with as many of `received` (sorted) as fit;
        returns it and how many it reports."""
        arrivals = self._arrivals
        base = max(start, received[0] - MAX_MISSING)
        reference = arrivals[received[0]] // REFERENCE_US
        reached = reference * REFERENCE_US  # the time the deltas so far add up to
        chunks = StatusChunks()
        deltas = bytearray()
        expected = base
        used = 0
        for seq in received:
            ticks = _ticks(arrivals[seq] - reached)
            if 0 <= ticks <= 0xFF:
                symbol, delta = SMALL_DELTA, bytes((ticks,))
            elif -0x8000 <= ticks <= 0x7FFF:
                symbol, delta = LARGE_DELTA, struct.pack("!h", ticks)
            else:
                break  # over ±8.19 s from the previous: the next packet starts there
            missing = seq - expected
            size = HEADER_BYTES + chunks.bytes + _worst_chunk_bytes(missing) + len(deltas)
            if used and (size + len(delta) > MAX_BYTES or seq - base >= MAX_STATUSES):
                break
            chunks.add(NOT_RECEIVED, missing)
            chunks.add(symbol, 1)
            deltas += delta
            reached += ticks * TICK_US
            expected = seq + 1
            used += 1
        body = struct.pack(
            "!IIHHI",
            sender_ssrc,
            self.media_ssrc,
            base & 0xFFFF,
            expected - base,
            (reference % REFERENCE_WRAP) << 8 | (self.count & 0xFF),
        )
        self.count += 1
        body += b"".join(struct.pack("!H", chunk) for chunk in chunks.finish()) + deltas
        body += bytes(-len(body) % 4)  # zero padding to a 32-bit boundary
        header = struct.pack("!BBH", 0x80 | FMT_TRANSPORT_CC, RTCP_RTPFB, len(body) // 4)
        return header + body, used


def _ticks(delta_us: int) -> int:
    """A delta in 250 µs ticks, rounded half away from zero (as libwebrtc rounds)."""
    half = TICK_US // 2
    return (delta_us + half) // TICK_US if delta_us >= 0 else -((-delta_us + half) // TICK_US)


def _worst_chunk_bytes(missing: int) -> int:
    """At most how many chunk bytes `missing` lost statuses and one received add."""
    return 2 * (4 + (missing // 7 if missing < 14 else missing // MAX_RUN))


class StatusChunks:
    """Packet status symbols packed into 16-bit chunks as they are added: the open chunk
    stays a run while its symbols are all the same, else becomes a vector."""

    def __init__(self) -> None:
        self.done: list[int] = []
        self._symbols: list[int] = []  # the open chunk's first 14 symbols
        self._size = 0  # symbols in the open chunk (a run may hold more than 14)
        self._same = True
        self._large = False  # a LARGE_DELTA among them: only 2-bit vectors hold it

    @property
    def bytes(self) -> int:
        return 2 * (len(self.done) + (1 if self._size else 0))

    def add(self, symbol: int, count: int) -> None:
        while count > 0:
            size = self._size
            if self._same and size >= 14 and symbol == self._symbols[0] and size < MAX_RUN:
                taken = min(count, MAX_RUN - size)
                self._size += taken
                count -= taken
            elif (
                size < 7
                or (size < 14 and not self._large and symbol != LARGE_DELTA)
                or (self._same and symbol == self._symbols[0] and size < MAX_RUN)
            ):
                self._symbols.append(symbol)
                self._same = self._same and symbol == self._symbols[0]
                self._large = self._large or symbol == LARGE_DELTA
                self._size += 1
                count -= 1
            else:
                self._close()

    def finish(self) -> list[int]:
        """Every chunk, the open one closed (padded with not-received symbols, which
        the status count leaves unread)."""
        chunks = list(self.done)
        symbols, size = self._symbols, self._size
        if size:
            if self._same:
                chunks.append(_run(symbols[0], size))
            elif size <= 7:
                chunks.append(_two_bit(symbols))
            else:
                chunks.append(_one_bit(symbols))
        return chunks

    def _close(self) -> None:
        """Close the open chunk because the next symbol does not fit it."""
        symbols, size = self._symbols, self._size
        rest: list[int] = []
        if self._same:
            self.done.append(_run(symbols[0], size))
        elif size == 14:  # fourteen without a large delta
            self.done.append(_one_bit(symbols))
        else:  # 7 to 13, with a large delta among them: the first seven as 2-bit
            self.done.append(_two_bit(symbols[:7]))
            rest = symbols[7:]
        self._symbols, self._size, self._same, self._large = [], 0, True, False
        for symbol in rest:
            self.add(symbol, 1)


def _run(symbol: int, length: int) -> int:
    return symbol << 13 | length


def _one_bit(symbols: list[int]) -> int:
    chunk = 0x8000
    for i, symbol in enumerate(symbols):
        chunk |= symbol << (13 - i)
    return chunk


def _two_bit(symbols: list[int]) -> int:
    chunk = 0xC000
    for i, symbol in enumerate(symbols):
        chunk |= symbol << (12 - 2 * i)
    return chunk
