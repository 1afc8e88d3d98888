"""RTCP budget: what a connection's RTCP costs the SFU's loop, and the most it may.

A participant holds its connection's SRTCP keys, so it can send RTCP as fast as its link
carries it. Each datagram is unprotected, parsed, routed and handled; a NACK's numbers
are each a resend check. aiortc_internals/rtcp.py's `FeedbackBudget` bounds both per
connection (`RTCP_DATAGRAMS_PER_SECOND`, `NACK_NUMBERS_PER_SECOND`). This measures, in
the same run:

- the CPU one datagram costs from where aioice hands it over (`Connection.data_received`)
  through aiortc's DTLS transport (`_recv_next`: SRTCP unprotect, `_handle_rtcp_data`)
  to the SFU's subscriber sender: a PLI, a receiver report, a NACK of 330 entries (5,610
  numbers, cut to `NACK_LOST_MAX` checks), and a datagram over the budget (dropped);
- the baseline: receiving one 720p publisher for a second (benchmarks/receive_path.py's
  transport-cc mode, its µs per packet times its packets per second);
- the most a connection's RTCP costs a second at the budget (every datagram the dearest
  kind short of a NACK, plus every NACKed number the budget allows), against it.

The sender is a video `RTCRtpSender` with the SFU's `RtpOutput` answering its NACKs (the
numbers name nothing it kept: the cheapest check, what a flood of made-up numbers costs).

    python -m benchmarks rtcp_budget        # writes docs/benchmarks.md's section
    python -m benchmarks.rtcp_budget        # prints it
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
import time
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from prometheus_client import CollectorRegistry, Counter
from pylibsrtp import Policy, Session

from benchmarks import receive_path
from server.jobs.clock import ManualClock
from server.media import aiortc_internals
from server.media.aiortc_internals import rtcp
from server.media.rtp_output import RtpOutput
from server.signaling import ratelimit

TITLE = "RTCP budget: what one connection's RTCP costs the SFU (issue 19)"
ROUNDS = 5
DATAGRAMS = 2000  # of each kind a round
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
RTX = RTCRtpCodecParameters(
    mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96}
)
SENDER_SSRC = 0x5678  # the subscriber's own


def _rtcp(packet_type: int, count: int, body: bytes) -> bytes:
    words = (8 + len(body)) // 4 - 1
    return struct.pack("!BBHL", 0x80 | count, packet_type, words, SENDER_SSRC) + body


def kinds(media_ssrc: int) -> dict[str, bytes]:
    """One datagram of each kind a subscriber sends about the SFU's stream, unprotected."""
    m = struct.pack("!L", media_ssrc)
    block = m + struct.pack("!LLLLL", 0, 1000, 0, 0, 0)  # one report block
    nack = m + b"".join(struct.pack("!HH", 17 * n, 0xFFFF) for n in range(330))
    return {
        "PLI": _rtcp(206, 1, m),
        "receiver report": _rtcp(201, 1, block),
        "NACK, 330 entries": _rtcp(205, 1, nack),
    }


async def connection(key: bytes) -> tuple[Any, Any, int]:
    """A connected DTLS transport with SRTCP keys set directly and a video sender on its
    router, its NACKs answered by an `RtpOutput` as the SFU's are; its SSRC."""
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video", direction="sendonly")
    sender = transceiver.sender
    dtls: Any = sender.transport
    dtls._rx_srtp = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    dtls._state = State.CONNECTED
    dtls._RTCDtlsTransport__handshake_done = True
    dtls.transport._connection._nominated[1] = None
    dtls._rtp_router.register_sender(sender, sender._ssrc)
    counter = Counter("bench_retransmitted", "resends", registry=CollectorRegistry())
    RtpOutput(aiortc_internals.RtpLink(sender), [VP8, RTX], [], None, counter)
    return dtls, dtls.transport._connection, sender._ssrc


async def cost(dtls: Any, link: Any, datagrams: list[bytes]) -> float:
    """CPU µs per datagram, fed as aioice hands them over and drained as aiortc's task
    would."""
    queue = link._queue
    began = time.process_time()
    for data in datagrams:
        link.data_received(data, 1)
        while not queue.empty():
            await dtls._recv_next()
    return (time.process_time() - began) / len(datagrams) * 1e6


NACK = "NACK, 330 entries"
NACK_CUT = "NACK, 330 entries, past the numbers' budget"
DROPPED = "over the budget (dropped)"
UNLIMITED = 10**9


def _budget(datagrams: int, numbers: int) -> None:
    """The budgets the next connection gets (read when its first datagram comes)."""
    rtcp.RTCP_DATAGRAMS_PER_SECOND = rtcp.RTCP_DATAGRAMS_BURST = datagrams
    rtcp.RTCP_BYTES_PER_SECOND = rtcp.RTCP_BYTES_BURST = UNLIMITED if datagrams else 0
    rtcp.NACK_NUMBERS_PER_SECOND = rtcp.NACK_NUMBERS_BURST = numbers


async def round_(key: bytes, best: dict[str, float]) -> None:
    """Each kind on a connection of its own (budgets as the kind needs, the clock of the
    budget standing still)."""
    tx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    saved = {name: getattr(rtcp, name) for name in BUDGETS}
    real_clock = ratelimit.clock
    ratelimit.clock = ManualClock(0.0)
    try:
        for kind, datagrams, numbers in (
            ("PLI", UNLIMITED, UNLIMITED),
            ("receiver report", UNLIMITED, UNLIMITED),
            (NACK, UNLIMITED, UNLIMITED),
            (NACK_CUT, UNLIMITED, 0),
            (DROPPED, 0, 0),
        ):
            _budget(datagrams, numbers)
            dtls, link, ssrc = await connection(key)
            packet = kinds(ssrc)["PLI" if kind == DROPPED else kind.split(", past")[0]]
            protected = [tx.protect_rtcp(packet) for _ in range(DATAGRAMS)]
            us = await cost(dtls, link, protected)
            best[kind] = min(best.get(kind, us), us)
    finally:
        for name, value in saved.items():
            setattr(rtcp, name, value)
        ratelimit.clock = real_clock


BUDGETS = (
    "RTCP_DATAGRAMS_PER_SECOND",
    "RTCP_DATAGRAMS_BURST",
    "RTCP_BYTES_PER_SECOND",
    "RTCP_BYTES_BURST",
    "NACK_NUMBERS_PER_SECOND",
    "NACK_NUMBERS_BURST",
)


async def publisher_second(key: bytes, rounds: int) -> tuple[float, float]:
    """Receiving one 720p publisher: its µs per packet (best of `rounds`) and packets a
    second."""
    packets = receive_path.datagrams(key)
    best = float("inf")
    for _ in range(rounds):
        best = min(best, (await receive_path.run_once(packets, key, "transport-cc", False))[0])
    return best / len(packets) * 1e6, len(packets) / receive_path.SECONDS


async def run(quick: bool = False) -> str:
    aiortc_internals.guard_rtcp()  # as SFU.start does
    key = os.urandom(30)
    rounds = 2 if quick else ROUNDS
    best: dict[str, float] = {}
    for _ in range(rounds):
        await round_(key, best)
    per_packet, rate = await publisher_second(key, rounds)
    publisher = per_packet * rate  # µs a second
    sizes = {kind: len(packet) for kind, packet in kinds(0).items()}
    # A datagram costs at most a + b * its bytes: a, the dearest small one; b, what a
    # NACK's parse adds a byte (cut to nothing: no checks); a NACKed number, c more.
    a = max(best["PLI"], best["receiver report"])
    b = (best[NACK_CUT] - best["PLI"]) / (sizes[NACK] - sizes["PLI"])
    c = (best[NACK] - best[NACK_CUT]) / rtcp.NACK_LOST_MAX
    at_budget = (
        a * rtcp.RTCP_DATAGRAMS_PER_SECOND
        + b * rtcp.RTCP_BYTES_PER_SECOND
        + c * rtcp.NACK_NUMBERS_PER_SECOND
    )  # µs a second
    unbounded = 10_000 * best[NACK]  # ten thousand such NACKs a second: ~13 MB/s
    load = os.getloadavg()[0]
    return "\n".join(
        [
            f"{DATAGRAMS} datagrams of each kind a round, each kind on a connection of its "
            f"own, best of {rounds}; the baseline, receiving one 720p publisher in the same "
            f"run ({rate:.0f} packets a second, {per_packet:.1f} µs each): "
            f"{publisher / 1000:.2f} ms of CPU a second. Load average {load:.1f}.",
            "",
            "| one datagram (bytes before SRTCP) | CPU µs | against a second of a publisher |",
            "|---|---:|---:|",
            *[
                f"| {kind} ({sizes.get(kind.split(', past')[0], sizes['PLI'])}) | {us:.1f} "
                f"| {us / publisher:.4f} |"
                for kind, us in best.items()
            ],
            "",
            f"Model: a datagram costs a + b per byte, a = {a:.1f} µs (the dearer small one), "
            f"b = {b:.2f} µs (what a NACK's parse adds a byte, the dearest parse measured); "
            f"a NACKed number c = {c:.2f} µs more (its resend check). At the budget "
            f"({rtcp.RTCP_DATAGRAMS_PER_SECOND} datagrams, "
            f"{rtcp.RTCP_BYTES_PER_SECOND // 1024} KiB and {rtcp.NACK_NUMBERS_PER_SECOND} "
            f"NACKed numbers a second), one connection's RTCP costs by this model at most "
            f"**{at_budget / 1000:.0f} ms of CPU a second "
            f"({at_budget / 1e4:.1f} % of a core), {at_budget / publisher:.0f}x receiving a "
            f"720p publisher**. Without it, ten thousand such NACKs a second would cost "
            f"{unbounded / 1e6:.1f} s of CPU a second: more than the loop has.",
        ]
    )


async def main() -> None:
    print(await run("--quick" in sys.argv))


if __name__ == "__main__":
    asyncio.run(main())
