"""Phone one-way latency, both directions, next to the WebRTC path in the same run.

One server process with the SIP gateway and the SFU. In a room: `ada`, an aiortc
publisher whose microphone is silence with a 60 ms 880 Hz burst every second; `bo`, an
aiortc subscriber; and a phone caller (sipp for signalling, this process's UDP socket
for its PCMA, so arrival times are exact), who bursts half a second after ada.

- room → WebRTC: ada's burst leaves her encoder → bo's decoder returns it.
- room → caller: the same burst → the first PCMA packet that carries it.
- caller → room: the caller's burst leaves its socket → bo decodes it (the SFU
  forwards the gateway's Opus of the phone leg).

An onset is the first 10 ms whose RMS passes a threshold after 300 ms of quiet; each
sent burst is matched to the first onset within 450 ms. bo's side includes aiortc's
jitter buffer; the caller's side has none (a phone's own buffer would add to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from server.phone import g711
from server.phone.rtp import RtpPacket
from tests.support.participants import issue_token
from tests.support.process import ADMIN_KEY, ServerProcess
from tests.support.services import free_port, require_program

TITLE = "Phone one-way latency (room ↔ caller, next to WebRTC)"
ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "sip" / "scenarios" / "call_wait_for_bye.xml"
ROOM = "bench-latency"
BURST_SECONDS = 0.06
QUIET_SECONDS = 0.3
MATCH_SECONDS = 0.45
THRESHOLD = 1500.0  # RMS of int16 samples; the bursts are ~5600, silence/comfort ~0


def onsets(chunks: list[tuple[float, np.ndarray]], rate: int) -> list[float]:
    """Arrival times of loud 10 ms pieces after `QUIET_SECONDS` of quiet. A chunk's
    arrival time is its last sample's; a piece inside it is dated back from there."""
    found: list[float] = []
    quiet_since: float | None = None
    piece = rate // 100
    for arrived, samples in chunks:
        pieces = max(1, len(samples) // piece)
        for i in range(pieces):
            part = samples[i * piece : (i + 1) * piece].astype(np.float64)
            at = arrived - (pieces - 1 - i) * 0.01
            loud = part.size and float(np.sqrt(np.mean(part**2))) > THRESHOLD
            if not loud:
                quiet_since = at if quiet_since is None else quiet_since
            else:
                if quiet_since is not None and at - quiet_since >= QUIET_SECONDS:
                    found.append(at)
                quiet_since = None
    return found


def delays(sent: list[float], heard: list[float]) -> list[float]:
    out = []
    for t in sent:
        later = [h - t for h in heard if 0 <= h - t <= MATCH_SECONDS]
        if later:
            out.append(min(later))
    return out


class Caller(asyncio.DatagramProtocol):
    """The phone's RTP: records what arrives (with when), sends PCMA 30 ms packets."""

    def __init__(self) -> None:
        self.heard: list[tuple[float, np.ndarray]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        with contextlib.suppress(Exception):
            packet = RtpPacket.parse(data)
            if packet.payload_type == 8:
                self.heard.append((now, g711.decode("PCMA", packet.payload)))


async def speak(caller: Caller, port: int, start: float, seconds: float, sent: list[float]) -> None:
    """30 ms PCMA packets on the wall clock; a burst at every start + k + 0.5 s."""
    rate, ptime = 8000, 0.03
    n = int(rate * ptime)
    seq, ts, k = 1, 0, 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        now = time.monotonic()
        phase = (now - start - 0.5) % 1.0
        if phase < BURST_SECONDS and now > start:
            samples = (np.sin(2 * np.pi * 1000 * np.arange(n) / rate) * 8000).astype(np.int16)
            if not sent or now - sent[-1] > 0.5:  # the burst's first packet
                sent.append(now)
        else:
            samples = np.zeros(n, dtype=np.int16)
        header = bytes([0x80, 8]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big")
        assert caller.transport is not None
        caller.transport.sendto(
            header + (4242).to_bytes(4, "big") + g711.encode("PCMA", samples),
            ("127.0.0.1", port),
        )
        seq, ts, k = (seq + 1) & 0xFFFF, ts + n, k + 1
        await asyncio.sleep(max(0.0, t0 + k * ptime - time.monotonic()))


def burst_track(start: float, sent: list[float]) -> Any:
    import av
    from aiortc.mediastreams import MediaStreamTrack

    class Bursts(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self._t0: float | None = None
            self._n = 0

        async def recv(self) -> av.AudioFrame:
            rate, samples = 48000, 960
            if self._t0 is None:
                self._t0 = time.monotonic()
            due = self._t0 + self._n * 0.02
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            now = time.monotonic()
            phase = (now - start) % 1.0
            if now > start and phase < BURST_SECONDS:
                data = (np.sin(2 * np.pi * 880 * np.arange(samples) / rate) * 8000).astype(np.int16)
                if not sent or now - sent[-1] > 0.5:  # the burst's first frame
                    sent.append(now)
            else:
                data = np.zeros(samples, dtype=np.int16)
            frame = av.AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, self._n * samples
            frame.time_base = fractions.Fraction(1, rate)
            self._n += 1
            return frame

    return Bursts()


async def connect(base: str, identity: str, pc: Any, publish: bool) -> Any:
    import socketio
    from aiortc import RTCSessionDescription

    token = await asyncio.to_thread(issue_token, base, ROOM, identity)
    sio = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    lock = asyncio.Lock()

    async def renegotiate(data: dict[str, Any]) -> None:
        async with lock:
            await pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await sio.call(
                "media_answer",
                {"sdp": pc.localDescription.sdp, "type": "answer", "revision": data["revision"]},
                timeout=30,
            )

    sio.on("media_renegotiate", renegotiate)
    await sio.connect(
        base, auth={"token": token}, transports=["websocket"], socketio_path="socket.io"
    )
    await sio.call("join", {"media_mode": "audio" if publish else "text"}, timeout=10)
    if not publish:
        pc.addTransceiver("audio", direction="recvonly")
    async with lock:
        await pc.setLocalDescription(await pc.createOffer())
        ack = await sio.call(
            "media_offer", {"sdp": pc.localDescription.sdp, "type": "offer"}, timeout=30
        )
        await pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
    return sio


async def collect(track: Any, into: list[tuple[float, np.ndarray]]) -> None:
    from aiortc.mediastreams import MediaStreamError

    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            samples = frame.to_ndarray().reshape(-1)[:: len(frame.layout.channels)]
            into.append((time.monotonic(), samples))


def row(name: str, values: list[float], sent: int) -> str:
    if not values:
        return f"| {name} | — | — | 0 of {sent} |"
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return f"| {name} | {statistics.median(ms):.0f} | {p90:.0f} | {len(ms)} of {sent} |"


async def run(quick: bool) -> str:
    from aiortc import RTCPeerConnection

    seconds = 10 if quick else 30
    sipp = require_program("sipp", "/usr/bin/sipp")
    work = Path(tempfile.mkdtemp(prefix="pairwise-bench-phone-latency-"))
    sip_port, rtp_port = free_port(), 31400
    server = await asyncio.to_thread(
        ServerProcess(
            data_dir=work,
            env={
                "PAIRWISE_SIP_BIND": f"127.0.0.1:{sip_port}",
                "PAIRWISE_SIP_RTP_PORT_MIN": str(rtp_port),
                "PAIRWISE_SIP_RTP_PORT_MAX": str(rtp_port + 1),
            },
        ).start,
        120.0,  # a loaded machine starts it slowly
    )
    sockets: list[Any] = []
    pcs: list[Any] = []
    loop = asyncio.get_running_loop()
    caller = Caller()
    transport, _ = await loop.create_datagram_endpoint(lambda: caller, ("127.0.0.1", 0))
    caller_port = transport.get_extra_info("sockname")[1]
    tasks: list[asyncio.Task[Any]] = []
    try:
        request = urllib.request.Request(
            f"{server.url}/api/v1/rooms/{ROOM}/pin",
            method="POST",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        pin = json.loads(await asyncio.to_thread(lambda: urllib.request.urlopen(request).read()))
        start = time.monotonic() + 6.0  # prompts and negotiation done by then
        ada_sent: list[float] = []
        caller_sent: list[float] = []
        bo_heard: list[tuple[float, np.ndarray]] = []
        ada, bo = RTCPeerConnection(), RTCPeerConnection()
        pcs += [ada, bo]

        @bo.on("track")
        def heard(track: Any) -> None:
            tasks.append(asyncio.create_task(collect(track, bo_heard)))

        ada.addTrack(burst_track(start, ada_sent))
        sockets.append(await connect(server.url, "ada", ada, publish=True))
        sockets.append(await connect(server.url, "bo", bo, publish=False))
        call = await asyncio.create_subprocess_exec(
            sipp, f"127.0.0.1:{sip_port}", "-sf", str(SCENARIO), "-s", pin["pin"], "-m", "1",
            "-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin", "-set", "rtpport", str(caller_port),
            cwd=work, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        tasks.append(
            asyncio.create_task(
                speak(caller, rtp_port, start, start - time.monotonic() + seconds, caller_sent)
            )
        )
        await asyncio.sleep(start - time.monotonic() + seconds + 1)  # the measured window
        load = os.getloadavg()[0]
    finally:
        for task in tasks:
            task.cancel()
        for sio in sockets:
            with contextlib.suppress(Exception):
                await sio.disconnect()
        for pc in pcs:
            await pc.close()
        transport.close()
        await asyncio.to_thread(server.stop)
    with contextlib.suppress(ProcessLookupError):
        call.kill()
    await call.wait()

    bo_onsets = onsets(bo_heard, 48000)
    caller_onsets = onsets(caller.heard, 8000)
    webrtc = delays(ada_sent, bo_onsets)
    to_caller = delays(ada_sent, caller_onsets)
    from_caller = delays(caller_sent, bo_onsets)
    gap = (
        statistics.median(to_caller) - statistics.median(webrtc)
        if to_caller and webrtc
        else float("nan")
    )
    return "\n".join(
        [
            f"{seconds} s of bursts (60 ms, one a second each way) in one room of a server "
            "process with the gateway and the SFU: ada (aiortc) publishes, bo (aiortc) "
            "subscribes, a phone caller (sipp signalling, PCMA 30 ms from this process's "
            "socket) dials in with the room PIN. Onset = first 10 ms over the threshold "
            "after 300 ms quiet; bo's times include aiortc's jitter buffer, the caller's "
            "include none.",
            "",
            "| path | one-way p50 ms | p90 ms | bursts matched |",
            "|---|---|---|---|",
            row("room → WebRTC subscriber (ada → SFU → bo)", webrtc, len(ada_sent)),
            row("room → phone caller (ada → SFU → mix → PCMA)", to_caller, len(ada_sent)),
            row("phone caller → room (PCMA → gateway → SFU → bo)", from_caller, len(caller_sent)),
            "",
            f"Room → caller minus room → WebRTC, p50: {gap * 1000:.0f} ms (target ≤ 40 ms). "
            f"Load average {load:.1f} on {os.cpu_count()} cores: the machine was shared with "
            "other work during the run.",
        ]
    )
