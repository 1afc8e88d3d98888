"""Send floor: the least Python can do per forwarded packet, against the SFU's send path.

Whether Pairwise can cost no more than Janus per forwarded stream depends on what a
forwarded packet must cost in Python at all. One process sends the benchmark's stream
(640x480@30 VP8 ~500 kbps in the payloads the SFU makes of it, and Opus) to
`SUBSCRIBERS` subscribers over loopback, to a reader process that blocks in `recv` (as
the SFU benchmark's subscriber processes do), three ways:

- `floor`: per packet one header `struct.pack`, one pylibsrtp `protect` and one
  `sendto`: nothing else (no history, no extensions, no counters);
- `rtp_output`: `RtpOutput.send` (rtp_output.py) on a real `RtpLink` (its transport
  and ICE pair stand-ins hold a real asyncio datagram transport and SRTP session):
  header extensions, NACK history, RTCP counters, GSO;
- `publication`: `Publication.push` (forwarding.py) to `ForwardedTrack`s sending
  directly: the SFU's whole send side after a frame is received (keyframe gating,
  the per-frame packetizing shared by every subscriber, metrics).

Each runs paced (frames at their real times, the loop sleeping between them, so the
reader sleeps and is woken as in the SFU benchmark) and back to back (no sleeps: what
the code costs when nobody has to be woken). CPU is this process's user + system time
over the run, per packet sent. With Janus installed, Janus's and Pairwise's whole-SFU
cost per forwarded packet from the SFU benchmark (N = `SUBSCRIBERS`, the same
machine, the same run) are the baseline: core per stream / packets per stream per
second.
"""

from __future__ import annotations

import asyncio
import fractions
import os
import shutil
import socket
import struct
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from benchmarks.procs import udp_reader

TITLE = "SFU send floor: what one forwarded packet costs in Python"
SUBSCRIBERS = 16
FPS = 30
AUDIO_FPS = 50
MID = "0"
KEY = bytes(range(30))  # SRTP master key + salt (AES_CM_128_HMAC_SHA1_80)


def _session(ssrc_any: bool = True) -> Any:
    import pylibsrtp

    policy = pylibsrtp.Policy(
        key=KEY,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    )
    policy.allow_repeat_tx = True
    return pylibsrtp.Session(policy)


def _stream() -> tuple[list[tuple[bytes, list[bytes]]], list[bytes], float]:
    """The benchmark's video frames (data and the payloads the SFU sends), its Opus
    frames, and the packets per second of one subscriber's video + audio."""
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from benchmarks.sfu import encode_audio, encode_video
    from server.media import aiortc_internals as internals

    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    packetize = internals.packetizer(codec)
    import av

    video = []
    for k, (data, _) in enumerate(encode_video(2 * FPS)):
        packet = av.Packet(data)
        packet.pts, packet.time_base = k * 3000, fractions.Fraction(1, 90000)
        video.append((data, packetize(packet)))
    audio = encode_audio(AUDIO_FPS)
    per_frame = sum(len(p) for _, p in video) / len(video)
    return video, audio, FPS * per_frame + AUDIO_FPS


class _Link:
    """A real `RtpLink` over stand-ins for aiortc's sender, DTLS transport and ICE pair
    that hold a real datagram transport and SRTP session."""

    @staticmethod
    def make(transport: Any, addr: tuple[str, int], session: Any, ssrc: int) -> Any:
        from aiortc.rtcdtlstransport import State as DtlsState

        from server.media.aiortc_internals import RtpLink

        pair = SimpleNamespace(protocol=SimpleNamespace(transport=transport), remote_addr=addr)
        dtls = SimpleNamespace(
            _state=DtlsState.CONNECTED,
            transport=SimpleNamespace(_connection=SimpleNamespace(_nominated={1: pair})),
            _tx_srtp=session,
            _RTCDtlsTransport__tx_packets=0,
            _RTCDtlsTransport__tx_bytes=0,
        )
        sender = SimpleNamespace(
            transport=dtls,
            _ssrc=ssrc,
            _rtx_ssrc=ssrc + 1,
            _RTCRtpSender__packet_count=0,
            _RTCRtpSender__octet_count=0,
            _RTCRtpSender__rtp_timestamp=0,
            _RTCRtpSender__ntp_timestamp=0,
        )
        return RtpLink(sender)  # type: ignore[arg-type]


def _outputs(transport: Any, addr: tuple[str, int], kind: str, ssrc: int) -> Any:
    from aiortc.rtcrtpparameters import (
        RTCRtpCodecParameters,
        RTCRtpHeaderExtensionParameters,
    )
    from prometheus_client import CollectorRegistry, Counter

    from server.media.rtp_output import (
        ABS_SEND_TIME_URI,
        AUDIO_LEVEL_URI,
        MID_URI,
        RtpOutput,
    )

    codec = (
        RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
        if kind == "video"
        else RTCRtpCodecParameters(
            mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111
        )
    )
    extensions = [
        RTCRtpHeaderExtensionParameters(id=4, uri=MID_URI),
        RTCRtpHeaderExtensionParameters(id=2, uri=ABS_SEND_TIME_URI),
        RTCRtpHeaderExtensionParameters(id=1, uri=AUDIO_LEVEL_URI),
    ]
    retransmissions = Counter("r", "r", registry=CollectorRegistry())
    link = _Link.make(transport, addr, _session(), ssrc)
    return codec, RtpOutput(link, [codec], extensions, MID, retransmissions)


SendFrame = Callable[[str, int], int]  # (kind, frame index) → packets sent


async def _senders(addr: tuple[str, int], stream: Any) -> dict[str, tuple[SendFrame, Any]]:
    from prometheus_client import CollectorRegistry

    from server.media.forwarding import ForwardedTrack, Publication
    from server.media.metrics import MediaMetrics
    from server.media.rtp_output import Packetized, ntp_now
    from server.media.sending import DirectSend

    video, audio, _ = stream
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    header = struct.Struct("!BBHII")
    sessions = [_session() for _ in range(SUBSCRIBERS)]
    seqs = [0] * SUBSCRIBERS

    def floor(kind: str, index: int) -> int:
        payloads = video[index % len(video)][1] if kind == "video" else [audio[index % len(audio)]]
        sent = 0
        for i, session in enumerate(sessions):
            protect, seq = session.protect, seqs[i]
            for payload in payloads:
                packet = header.pack(0x80, 96, seq, index * 3000, 1000 + i) + payload
                sock.sendto(protect(packet), addr)
                seq = (seq + 1) & 0xFFFF
                sent += 1
            seqs[i] = seq
        return sent

    outputs = {
        kind: [_outputs(transport, addr, kind, 2000 + 2 * i)[1] for i in range(SUBSCRIBERS)]
        for kind in ("video", "audio")
    }

    def rtp_output(kind: str, index: int) -> int:
        if kind == "video":
            frame = Packetized(video[index % len(video)][1], index * 3000, ntp_now())
        else:
            frame = Packetized([audio[index % len(audio)]], index * 960, ntp_now(), 0x90)
        for output in outputs[kind]:
            output.send(frame)
        return len(frame.payloads) * SUBSCRIBERS

    metrics = MediaMetrics(CollectorRegistry())
    publications: dict[str, Any] = {}
    codecs: dict[str, Any] = {}
    for kind in ("video", "audio"):
        publication = Publication("bench", "publisher", kind, metrics)
        for i in range(SUBSCRIBERS):
            codec, output = _outputs(transport, addr, kind, 3000 + 2 * i)
            codecs[kind] = codec
            track = ForwardedTrack(publication, f"sub{i}")
            track.use(DirectSend(kind, metrics, output))
            publication.subscribe(track)
        publications[kind] = publication

    def publication(kind: str, index: int) -> int:
        if kind == "video":
            data, payloads = video[index % len(video)]
            publications[kind].push(codecs[kind], data, index * 3000, None, None)
            return len(payloads) * SUBSCRIBERS
        publications[kind].push(codecs[kind], audio[index % len(audio)], index * 960, 0x90)
        return SUBSCRIBERS

    # a simulcast camera's top layer (of three), every subscriber on it
    layered = Publication("bench", "publisher", "video", metrics)
    layered.attach(codecs["video"], lambda: True, layers=3, request_layer=lambda i: True)
    for i in range(SUBSCRIBERS):
        _, output = _outputs(transport, addr, "video", 4000 + 2 * i)
        track = ForwardedTrack(layered, f"sub{i}")
        track.use(DirectSend("video", metrics, output))
        track.target = 2
        layered.subscribe(track)

    def simulcast(kind: str, index: int) -> int:
        if kind == "video":
            data, payloads = video[index % len(video)]
            layered.push_layer(codecs[kind], data, index * 3000, 2)
            return len(payloads) * SUBSCRIBERS
        return publication(kind, index)

    return {
        "floor": (floor, sock),
        "rtp_output": (rtp_output, transport),
        "publication": (publication, transport),
        "simulcast": (simulcast, transport),
    }


async def _paced(send: SendFrame, seconds: float) -> float:
    """µs of CPU per packet, frames sent at their real times."""
    events = sorted(
        [(k / FPS, "video", k) for k in range(int(seconds * FPS))]
        + [(k / AUDIO_FPS, "audio", k) for k in range(int(seconds * AUDIO_FPS))]
    )
    packets = 0
    began = time.monotonic()
    cpu = time.process_time()
    for at, kind, index in events:
        delay = began + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packets += send(kind, index)
    return (time.process_time() - cpu) / packets * 1e6


def _back_to_back(send: SendFrame, frames: int) -> float:
    """µs of CPU per packet, frames sent one after another."""
    packets = 0
    cpu = time.process_time()
    for k in range(frames):
        packets += send("video", k)
        if k % 3 < 2:  # 5 audio frames for every 3 video frames
            packets += send("audio", k)
        if k % 3 == 0:
            packets += send("audio", k + 1)
    return (time.process_time() - cpu) / packets * 1e6


async def measure(seconds: float, frames: int, stream: Any) -> dict[str, tuple[float, float]]:
    addr, child = udp_reader(3, buffer=1 << 22)
    try:
        senders = await _senders(addr, stream)
        results = {}
        for name, (send, _) in senders.items():
            send("video", 0)  # a keyframe first (the publication gates on it)
            results[name] = (await _paced(send, seconds), _back_to_back(send, frames))
        for _, handle in senders.values():
            handle.close()
    finally:
        await asyncio.to_thread(os.waitpid, child, 0)
    return results


async def run(quick: bool) -> str:
    from benchmarks import sfu

    seconds, frames = (3.0, 300) if quick else (10.0, 1500)
    stream = await asyncio.to_thread(_stream)
    packets_per_second = stream[2]
    results = await measure(seconds, frames, stream)
    baseline: dict[str, float] = {}
    fps: dict[str, float] = {}
    modes = ["pairwise"] + (["janus"] if shutil.which("janus") else [])
    for mode in modes:
        row = await asyncio.to_thread(sfu.measure, mode, SUBSCRIBERS, 5.0 if quick else 10.0)
        baseline[mode] = row["per_stream"] / packets_per_second * 1e6
        fps[mode] = row["fps_min"]
    floor_paced, floor_b2b = results["floor"]
    lines = [
        f"One sender process, {SUBSCRIBERS} subscribers (each its own SRTP session) on "
        f"loopback to one reader process; the benchmark's 640x480@30 VP8 ~500 kbps + Opus "
        f"stream ({packets_per_second:.0f} packets per subscriber per second). CPU of the "
        "sender (user + system) per packet sent; *paced*: frames at their real times "
        f"({seconds:.0f} s), *back to back*: {frames} video frames with their audio, no "
        "sleeps.",
        "",
        "| path | µs / packet, paced | µs / packet, back to back | paced vs floor |",
        "|---|---:|---:|---:|",
    ]
    for name, label in (
        ("floor", "floor: header + SRTP protect + one `sendto`"),
        ("rtp_output", "`RtpOutput.send` (extensions, history, counters, GSO)"),
        ("publication", "`Publication.push` → every `ForwardedTrack` (the SFU's send side)"),
        ("simulcast", "`Publication.push_layer` → every `ForwardedTrack` on the layer"),
    ):
        paced, b2b = results[name]
        lines.append(f"| {label} | {paced:.1f} | {b2b:.1f} | {paced / floor_paced:.2f}x |")
    for mode in modes:
        lines.append(
            f"| whole SFU, {mode} (benchmarks.sfu, N={SUBSCRIBERS}: core per stream / "
            f"packets per stream per s; fps min {fps[mode]:.1f} of {FPS}) | "
            f"{baseline[mode]:.1f} | | "
            f"{baseline[mode] / floor_paced:.2f}x |"
        )
    lines.append("")
    if "janus" in baseline:
        lines.append(
            f"- Janus forwards a packet for {baseline['janus']:.1f} µs of CPU in all (receive "
            f"included); the Python floor for the send alone is {floor_paced:.1f} µs paced "
            f"({floor_b2b:.1f} back to back)."
        )
    lines.append(
        f"- Load average at the end: {os.getloadavg()[0]:.1f} (2 cores, shared). A whole-SFU "
        "row whose fps fell below 30 forwarded less than it should: its figure is too low."
    )
    lines.append(
        "- The floor includes the sender's own wake-ups (paced) and, on loopback, the "
        "reader's kernel receive work and wake-ups, as the SFU benchmark does."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    quick = "--quick" in sys.argv
    if "--no-sfu" in sys.argv:  # the micro-benchmark only
        seconds, frames = (3.0, 300) if quick else (10.0, 1500)
        stream = _stream()
        for name, (paced, b2b) in asyncio.run(measure(seconds, frames, stream)).items():
            print(f"{name:12} paced {paced:6.1f} µs/packet  back to back {b2b:6.1f}")
    else:
        print(asyncio.run(run(quick)))
