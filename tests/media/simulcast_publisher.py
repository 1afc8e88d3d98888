"""An aiortc participant that publishes simulcast the way a browser does (RFC 8853).

aiortc sends one encoding per sender, so the three layers are played here: the offer's
video m-line gets `a=rid:q/h/f send` and `a=simulcast:send q;h;f` and the RID header
extensions (and its `a=ssrc` lines are dropped, as Chrome does for simulcast, or
replaced by one per layer with an `a=ssrc-group:SIM`), and once DTLS is up each layer
is sent as its own RTP stream (own SSRC, sequence numbers and timestamp origin, the MID
and RID extensions on every packet) from frames encoded once at three sizes. PLIs the
SFU sends for a layer's SSRC are counted and answered with that layer's next keyframe.
"""

from __future__ import annotations

import asyncio
import fractions
import random
import re
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import RTCP_PSFB_PLI, HeaderExtensionsMap, RtcpPsfbPacket, RtpPacket

from server.media import aiortc_internals
from server.media.simulcast import REPAIRED_RID_URI, RID_URI
from tests.media.support import Encoded, EncodedTrack, MediaClient, encode_video

RIDS = ("q", "h", "f")
SIZES = ((160, 90), (320, 180), (640, 360))
BITRATES = (60_000, 400_000, 1_000_000)
RID_ID, RRID_ID = 13, 14
FPS = 15
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"


def encode_layers(frames: int = 45, keyint: int = 30) -> list[list[Encoded]]:
    return [
        encode_video(frames, width=w, height=h, fps=FPS, keyint=keyint, bitrate=rate)
        for (w, h), rate in zip(SIZES, BITRATES, strict=True)
    ]


@dataclass
class LayerStream:
    rid: str
    frames: list[Encoded]
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    seq: int = field(default_factory=lambda: random.randrange(1 << 15))
    timestamp: int = field(default_factory=lambda: random.getrandbits(32))
    index: int = 0
    plis: int = 0
    sent: int = 0
    stopped: bool = False

    def keyframe_now(self) -> None:
        self.plis += 1
        for step in range(len(self.frames)):
            candidate = (self.index + step) % len(self.frames)
            if self.frames[candidate].key:
                self.index = candidate
                return


def simulcast_offer(sdp: str, layers: list[LayerStream], with_ssrcs: bool) -> str:
    """The client's offer with its video m-line made a simulcast one."""
    out: list[str] = []
    in_video = False
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            in_video = line.startswith("m=video")
        if in_video and line.startswith(("a=ssrc:", "a=ssrc-group:")):
            continue
        out.append(line)
        if in_video and line.startswith("a=mid:"):
            out += [f"a=extmap:{RID_ID} {RID_URI}", f"a=extmap:{RRID_ID} {REPAIRED_RID_URI}"]
            out += [f"a=rid:{layer.rid} send" for layer in layers]
            out.append("a=simulcast:send " + ";".join(layer.rid for layer in layers))
            if with_ssrcs:
                out += [f"a=ssrc:{layer.ssrc} cname:simulcast" for layer in layers]
                out.append("a=ssrc-group:SIM " + " ".join(str(x.ssrc) for x in layers))
    return "\r\n".join(out)


class SimulcastPublisher:
    """Plays a browser's three simulcast layers on `client`'s connection."""

    def __init__(self, client: MediaClient, layers: list[list[Encoded]]):
        self.client = client
        self.layers = [LayerStream(rid, frames) for rid, frames in zip(RIDS, layers, strict=True)]
        silent = EncodedTrack("video", layers[0], FPS)
        silent.silent = True  # aiortc's own sender sends nothing: the layers are played
        self.transceiver = client.pc.addTransceiver(silent, direction="sendonly")
        self._task: asyncio.Task[None] | None = None

    async def connect(self, with_ssrcs: bool = False) -> dict[str, Any]:
        self.client.munge_first_offer = lambda sdp: simulcast_offer(sdp, self.layers, with_ssrcs)
        ack = await self.client.connect()
        self._task = asyncio.create_task(self._send())
        return ack

    def answer_lines(self) -> list[str]:
        assert self.client.first_exchange is not None
        return self.client.first_exchange[1].split("\r\n")

    async def _send(self) -> None:
        sender = self.transceiver.sender
        await self.client.wait_connected(timeout=20)
        transport = sender.transport
        for layer in self.layers:
            aiortc_internals.listen_rtcp(transport, layer.ssrc, self._feedback(layer))
        codec = aiortc_internals.negotiated_codec(self.transceiver)
        assert codec is not None
        _, negotiated = aiortc_internals.negotiated_parameters(self.transceiver)
        mid_id = next(x.id for x in negotiated if x.uri == MID_URI)
        extensions = HeaderExtensionsMap()
        extensions.configure(
            RTCRtpParameters(
                headerExtensions=[
                    RTCRtpHeaderExtensionParameters(id=mid_id, uri=MID_URI),
                    RTCRtpHeaderExtensionParameters(id=RID_ID, uri=RID_URI),
                ]
            )
        )
        packetizers = [aiortc_internals.packetizer(codec) for _ in self.layers]
        link = aiortc_internals.RtpLink(sender)
        loop = asyncio.get_running_loop()
        started = loop.time()
        tick = 0
        while True:
            tick += 1
            await asyncio.sleep(max(0.0, started + tick / FPS - loop.time()))
            link_wire = link.wire()
            if link_wire is None:
                continue
            for layer, packetize in zip(self.layers, packetizers, strict=True):
                if layer.stopped:
                    continue
                frame = layer.frames[layer.index % len(layer.frames)]
                layer.index = (layer.index + 1) % len(layer.frames)
                packet = av.Packet(frame.data)
                packet.pts, packet.time_base = 0, fractions.Fraction(1, 90000)
                payloads = packetize(packet)
                layer.timestamp = (layer.timestamp + 90000 // FPS) & 0xFFFFFFFF
                packets = []
                for i, payload in enumerate(payloads):
                    rtp = RtpPacket(
                        payload_type=codec.payloadType or 96,
                        marker=int(i == len(payloads) - 1),
                        sequence_number=layer.seq,
                        timestamp=layer.timestamp,
                        ssrc=layer.ssrc,
                        payload=payload,
                    )
                    rtp.extensions.mid = self.transceiver.mid
                    rtp.extensions.rtp_stream_id = layer.rid
                    packets.append(rtp.serialize(extensions))
                    layer.seq = (layer.seq + 1) & 0xFFFF
                link_wire.packets(packets)
                layer.sent += 1

    @staticmethod
    def _feedback(layer: LayerStream) -> Any:
        def seen(packet: Any) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
                layer.keyframe_now()

        return seen

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def rids_in(lines: list[str]) -> list[str]:
    return [m.group(1) for line in lines if (m := re.match(r"a=rid:(\w+) recv", line))]
