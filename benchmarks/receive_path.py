"""Receive path: CPU per SRTP packet from the socket's datagram to the tapped frame.

Each packet carries abs-send-time and a transport-wide sequence number, as Chrome's do
once transport-cc is negotiated. Two ways of receiving them, in the same run:

- REMB: transport-cc not negotiated (the transport's extension map does not know its
  id): aiortc's remote bitrate estimator runs on every packet's abs-send-time and sends
  its REMBs, as for a publisher before transport-cc (and one whose browser offers none);
- transport-cc: negotiated (negotiation.py's `accept_transport_cc`: the id known, the
  estimator gone): each packet's sequence number and arrival time are recorded, and a
  feedback is built every 18 packets (~100 ms of this stream), not sent.
  Both tapped as the SFU taps a single-stream video (`tap_video`: the stream is one
  layer, its NACK tracking and frame assembly in server/media/_rtp_receive.c; with
  transport-cc taken from the datagram to the frame in C, with REMB on the Python path
  for the estimator); *REMB, before* and *transport-cc, before*: tapped as before
  `tap_video` (`tap_encoded_frames`: aiortc's NACK generator and a Python jitter buffer),
  in the same run.
- simulcast layer: as transport-cc, the receiver tapped as a simulcast m-line
  (`tap_simulcast`), as the SFU receives a browser's simulcast camera.
- audio: a tapped audio receiver fed 20 ms Opus packets (random payloads of Opus's
  size, each with an audio level and a transport-wide sequence number), as the SFU
  receives a browser's microphone: its stream taken from the datagram in C
  (`route_fast`); *audio, Python path*: the same with that routing off (each packet
  parsed into an `RtpPacket` and handled in Python), the way before it, in the same run.

One tapped video receiver (what the SFU makes of a publisher's camera) on a real
aiortc transport with SRTP keys set directly (no network, no handshake), fed a
pre-encoded 1280x720 VP8 stream (~1.5 Mbit/s) packetized and protected once up front.
Each datagram enters where aioice hands it over (`Connection.data_received`); the
queued ones (aiortc's own path) are drained by the DTLS transport's `_recv_next`, as
its task would. A run counts CPU time (`time.process_time`, best of `ROUNDS`) and
Python function calls (cProfile) per packet, so the same command on two trees
compares them:

    python -m benchmarks receive_path            # writes docs/benchmarks.md's section
    python -m benchmarks.receive_path            # prints it
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
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from pylibsrtp import Policy, Session

from benchmarks import sfu
from server.media import aiortc_internals, simulcast, transport_feedback
from server.media.aiortc_internals.base import ESTIMATOR_ATTR, JITTER_ATTR

TITLE = "Receive path: one publisher's packets, socket to frame (issue 19)"
ROUNDS = 5
SSRC = 0x1234
CODEC = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
ABS_SEND_TIME = RTCRtpHeaderExtensionParameters(
    id=2, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
)
TRANSPORT_CC = RTCRtpHeaderExtensionParameters(id=3, uri=transport_feedback.URI)
FEEDBACK_EVERY = 18  # packets: ~100 ms of this ~178 packets/s stream
AUDIO_FEEDBACK_EVERY = 5  # ~100 ms of 20 ms packets
MODES = (
    "REMB",
    "transport-cc",
    "simulcast layer",
    "REMB, before",
    "transport-cc, before",
    "audio",
    "audio, Python path",
)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111, channels=2)
AUDIO_LEVEL = RTCRtpHeaderExtensionParameters(
    id=1, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"
)
AUDIO_PACKETS = 3000  # a minute of 20 ms packets


SECONDS = 4  # of video in `datagrams`


def datagrams(key: bytes) -> list[bytes]:
    """`SECONDS` of 720p VP8 as SRTP datagrams."""
    cache = Path(tempfile.gettempdir()) / "pairwise-receive-path-720p.pickle"
    if cache.exists():  # the same frames for every tree compared
        frames = pickle.loads(cache.read_bytes())
    else:
        sfu.WIDTH, sfu.HEIGHT, sfu.VIDEO_KBPS = 1280, 720, 1500
        frames = sfu.encode_video(SECONDS * sfu.FPS)
        cache.write_bytes(pickle.dumps(frames))
    encoder = get_encoder(CODEC)
    tx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    ids = HeaderExtensionsMap()
    ids.configure(RTCRtpReceiveParameters(headerExtensions=[ABS_SEND_TIME, TRANSPORT_CC]))
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
            rtp.extensions.abs_send_time = (index * 33 << 18) // 1000 & 0xFFFFFF  # 6.18 s
            rtp.extensions.transport_sequence_number = seq
            out.append(tx.protect(rtp.serialize(ids)))
            seq = (seq + 1) & 0xFFFF
    return out


def audio_datagrams(key: bytes) -> list[bytes]:
    """A minute of a microphone's Opus packets as SRTP datagrams (payloads random, of
    Opus's size at ~32 kbit/s)."""
    tx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    ids = HeaderExtensionsMap()
    ids.configure(RTCRtpReceiveParameters(headerExtensions=[AUDIO_LEVEL, TRANSPORT_CC]))
    out = []
    for seq in range(AUDIO_PACKETS):
        rtp = RtpPacket(
            payload_type=111,
            sequence_number=seq,
            timestamp=seq * 960,
            ssrc=SSRC,
            payload=os.urandom(80),
        )
        rtp.extensions.audio_level = (True, 30 + seq % 40)
        rtp.extensions.transport_sequence_number = seq
        out.append(tx.protect(rtp.serialize(ids)))
    return out


async def receiver(key: bytes, mode: str) -> tuple[Any, Any, list[int]]:
    """A tapped, started video receiver on a connected transport, receiving as `mode`
    says; the list counts frames."""
    pc = RTCPeerConnection()
    audio = mode.startswith("audio")
    transceiver = pc.addTransceiver("audio" if audio else "video", direction="recvonly")
    receiver = transceiver.receiver
    dtls: Any = receiver.transport
    dtls._rx_srtp = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    dtls._state = State.CONNECTED
    dtls._RTCDtlsTransport__handshake_done = True  # _recv_next asks DTLS nothing more
    dtls.transport._connection._nominated[1] = None  # "connected", for its recv()
    frames = [0]

    def sink(codec: Any, frame: Any) -> None:
        frames[0] += 1

    if audio:
        aiortc_internals.tap_encoded_frames(receiver, sink)
        if mode == "audio, Python path":
            getattr(receiver, JITTER_ATTR)._on_stream = None
        parameters = RTCRtpReceiveParameters(
            codecs=[OPUS],
            encodings=[RTCRtpDecodingParameters(ssrc=SSRC, payloadType=111)],
            headerExtensions=[AUDIO_LEVEL, TRANSPORT_CC],
        )
        dtls._register_rtp_receiver(receiver, parameters)
        receiver._RTCRtpReceiver__codecs = {111: OPUS}
        receiver._RTCRtpReceiver__decoder_thread = True
        return dtls, dtls.transport._connection, frames
    if mode == "simulcast layer":
        section = simulcast.SimulcastSection(mid="0", rids=[], ssrcs=[SSRC])
        aiortc_internals.tap_simulcast(receiver, simulcast.Layers(section), sink)
    elif mode.endswith("before"):
        aiortc_internals.tap_encoded_frames(receiver, sink)
    else:
        aiortc_internals.tap_video(receiver, sink, None)
    remb = mode.startswith("REMB")
    parameters = RTCRtpReceiveParameters(
        codecs=[CODEC],
        encodings=[RTCRtpDecodingParameters(ssrc=SSRC, payloadType=96)],
        headerExtensions=[ABS_SEND_TIME] + ([] if remb else [TRANSPORT_CC]),
    )
    if not remb:
        setattr(receiver, ESTIMATOR_ATTR, None)
    dtls._register_rtp_receiver(receiver, parameters)
    receiver._RTCRtpReceiver__codecs = {96: CODEC}
    receiver._RTCRtpReceiver__decoder_thread = True  # started, as far as frames go
    receiver._RTCRtpReceiver__nack_generator = None  # loss-free: nothing to NACK
    return dtls, dtls.transport._connection, frames


async def feed(dtls: Any, connection: Any, packets: list[bytes], every: int) -> None:
    queue = connection._queue
    direct = connection.data_received
    for count, data in enumerate(packets, 1):
        connection.data_received(data, 1)
        while not queue.empty():
            await dtls._recv_next()
        if count % every == 0 and direct.feedback is not None:
            direct.feedback.log.feedbacks(0)  # what the 100 ms timer does, but sending


async def run_once(
    packets: list[bytes], key: bytes, mode: str, profile: bool
) -> tuple[float, int, int]:
    dtls, connection, frames = await receiver(key, mode)
    profiler = cProfile.Profile() if profile else None
    began = time.process_time()
    if profiler is not None:
        profiler.enable()
    every = AUDIO_FEEDBACK_EVERY if mode.startswith("audio") else FEEDBACK_EVERY
    await feed(dtls, connection, packets, every)
    if profiler is not None:
        profiler.disable()
    elapsed = time.process_time() - began
    calls = sum(v[1] for v in pstats.Stats(profiler).stats.values()) if profiler else 0  # type: ignore[attr-defined]
    if connection.data_received.feedback is not None:
        connection.data_received.feedback.stop()
    await aiortc_internals.base.sending.cancel_all()  # the REMBs it would have sent
    return elapsed, calls, frames[0]


# what each mode is set against in the last column: a single-stream video against the
# way before `tap_video` (a Python jitter buffer), audio against its Python path
BASELINE = {
    "REMB": "REMB, before",
    "transport-cc": "transport-cc, before",
    "simulcast layer": "transport-cc, before",
    "REMB, before": "REMB, before",
    "transport-cc, before": "REMB, before",
    "audio": "audio, Python path",
    "audio, Python path": "audio, Python path",
}


async def run(quick: bool = False) -> str:
    """Every mode, rounds interleaved so load changes hit them alike: a Markdown table."""
    key = os.urandom(30)
    video, audio = datagrams(key), audio_datagrams(key)
    stream = {mode: audio if mode.startswith("audio") else video for mode in MODES}
    best = {mode: float("inf") for mode in MODES}
    for _ in range(2 if quick else ROUNDS):
        for mode in MODES:
            best[mode] = min(best[mode], (await run_once(stream[mode], key, mode, False))[0])
    rows = []
    for mode in MODES:
        packets = stream[mode]
        _, calls, frames = await run_once(packets, key, mode, True)
        us = best[mode] / len(packets) * 1e6
        base = BASELINE[mode]
        against = best[mode] / len(packets) / (best[base] / len(stream[base]))
        rows.append(
            f"| {mode} | {frames} | {calls / len(packets):.1f} | {us:.1f} | {against:.2f} ({base}) |"
        )
    load = os.getloadavg()[0]
    return "\n".join(
        [
            f"Video: {len(video)} packets of 720p VP8 with abs-send-time and a transport-wide "
            f"sequence number; audio: {len(audio)} Opus-sized packets with an audio level and "
            f"a transport-wide sequence number; best of {2 if quick else ROUNDS}, load "
            f"average {load:.1f}.",
            "",
            "| receiving as | frames | Python calls / packet | CPU µs / packet | per packet against |",
            "|---|---:|---:|---:|---:|",
            *rows,
        ]
    )


async def main(once: bool) -> None:
    if once:  # under callgrind: RECEIVE_PATH_PACKETS=0 measures everything but the packets
        key = os.urandom(30)
        mode = os.environ.get("RECEIVE_PATH_MODE", MODES[1])
        packets = audio_datagrams(key) if mode.startswith("audio") else datagrams(key)
        count = int(os.environ.get("RECEIVE_PATH_PACKETS", len(packets)))
        await run_once(packets[:count], key, mode, False)
        return
    print(await run())


if __name__ == "__main__":
    asyncio.run(main("--once" in sys.argv))
