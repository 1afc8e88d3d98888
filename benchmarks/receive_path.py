"""Receive path: CPU per SRTP packet from the socket's datagram to the tapped frame.

One tapped video receiver (what the SFU makes of a publisher's camera) on a real
aiortc transport with SRTP keys set directly (no network, no handshake), fed a
pre-encoded 1280x720 VP8 stream (~1.5 Mbit/s) packetized and protected once up front.
Each datagram enters where aioice hands it over (`Connection.data_received`); the
queued ones (aiortc's own path) are drained by the DTLS transport's `_recv_next`, as
its task would. A run counts CPU time (`time.process_time`, best of `ROUNDS`) and
Python function calls (cProfile) per packet, so the same command on two trees
compares them:

    python -m benchmarks.receive_path            # prints one line
    valgrind --tool=callgrind python -m benchmarks.receive_path --once   # instructions
"""

from __future__ import annotations

import asyncio
import cProfile
import fractions
import os
import pickle
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
from aiortc import RTCPeerConnection
from aiortc.codecs import get_encoder
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpDecodingParameters,
    RTCRtpReceiveParameters,
)
from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from benchmarks import sfu
from server.media import aiortc_internals

ROUNDS = 5
SSRC = 0x1234
CODEC = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)


def datagrams(key: bytes) -> list[bytes]:
    """Four seconds of 720p VP8 as SRTP datagrams."""
    cache = Path(tempfile.gettempdir()) / "pairwise-receive-path-720p.pickle"
    if cache.exists():  # the same frames for every tree compared
        frames = pickle.loads(cache.read_bytes())
    else:
        sfu.WIDTH, sfu.HEIGHT, sfu.VIDEO_KBPS = 1280, 720, 1500
        frames = sfu.encode_video(4 * sfu.FPS)
        cache.write_bytes(pickle.dumps(frames))
    encoder = get_encoder(CODEC)
    tx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    out, seq = [], 0
    for index, (data, _) in enumerate(frames):
        packet = av.Packet(data)
        packet.pts, packet.time_base = index * 3000, fractions.Fraction(1, 90000)
        payloads, timestamp = encoder.pack(packet)
        for i, payload in enumerate(payloads):
            rtp = RtpPacket(
                payload_type=96,
                marker=int(i == len(payloads) - 1),
                sequence_number=seq,
                timestamp=timestamp,
                ssrc=SSRC,
                payload=payload,
            )
            out.append(tx.protect(rtp.serialize()))
            seq = (seq + 1) & 0xFFFF
    return out


async def receiver(key: bytes) -> tuple[Any, Any, list[int]]:
    """A tapped, started video receiver on a connected transport; the list counts frames."""
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video", direction="recvonly")
    receiver = transceiver.receiver
    dtls: Any = receiver.transport
    dtls._rx_srtp = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    dtls._state = State.CONNECTED
    dtls._RTCDtlsTransport__handshake_done = True  # _recv_next asks DTLS nothing more
    dtls.transport._connection._nominated[1] = None  # "connected", for its recv()
    frames = [0]

    def sink(codec: Any, frame: Any) -> None:
        frames[0] += 1

    aiortc_internals.tap_encoded_frames(receiver, sink)
    parameters = RTCRtpReceiveParameters(
        codecs=[CODEC], encodings=[RTCRtpDecodingParameters(ssrc=SSRC, payloadType=96)]
    )
    dtls._register_rtp_receiver(receiver, parameters)
    receiver._RTCRtpReceiver__codecs = {96: CODEC}
    receiver._RTCRtpReceiver__decoder_thread = True  # started, as far as frames go
    receiver._RTCRtpReceiver__nack_generator = None  # loss-free: nothing to NACK
    return dtls, dtls.transport._connection, frames


async def feed(dtls: Any, connection: Any, packets: list[bytes]) -> None:
    queue = connection._queue
    for data in packets:
        connection.data_received(data, 1)
        while not queue.empty():
            await dtls._recv_next()


async def run_once(packets: list[bytes], key: bytes, profile: bool) -> tuple[float, int, int]:
    dtls, connection, frames = await receiver(key)
    profiler = cProfile.Profile() if profile else None
    began = time.process_time()
    if profiler is not None:
        profiler.enable()
    await feed(dtls, connection, packets)
    if profiler is not None:
        profiler.disable()
    elapsed = time.process_time() - began
    calls = sum(v[1] for v in pstats.Stats(profiler).stats.values()) if profiler else 0  # type: ignore[attr-defined]
    return elapsed, calls, frames[0]


async def main(once: bool) -> None:
    key = os.urandom(30)
    packets = datagrams(key)
    if once:  # under callgrind: RECEIVE_PATH_PACKETS=0 measures everything but the packets
        await run_once(
            packets[: int(os.environ.get("RECEIVE_PATH_PACKETS", len(packets)))], key, False
        )
        return
    best = min([(await run_once(packets, key, False))[0] for _ in range(ROUNDS)])
    _, calls, frames = await run_once(packets, key, True)
    load = os.getloadavg()[0]
    print(
        f"{len(packets)} packets, {frames} frames: {best / len(packets) * 1e6:.1f} µs CPU "
        f"and {calls / len(packets):.1f} Python calls per packet "
        f"(best of {ROUNDS}; load average {load:.1f})"
    )


if __name__ == "__main__":
    asyncio.run(main("--once" in sys.argv))
