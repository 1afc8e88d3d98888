"""Every touch of aiortc's private internals, in one place. aiortc is pinned (==1.16.0).

aiortc has public hooks for *sending* encoded media (a track whose `recv()` returns an
`av.Packet` is only packetized) but none for *receiving* it, nor for keyframe
requests. The SFU needs both, so it relies on these internals:

Each module here holds one concern, the numbered internals it relies on, and a
`problems()` that checks them:

- `receive.py`: encoded frames instead of decoded ones (1. decoder queue, 2.
  `JitterFrame`, 8. prompt jitter buffers and audio levels).
- `direct_receive.py`: each SRTP packet handled at once, in plain calls, instead of
  through aioice's queue and aiortc's per-packet coroutines (17), and the transport-cc
  feedback sent for it (18).
- `arrival.py`: the kernel's arrival time of each datagram (20).
- `datagrams.py`: a datagram too long for SRTP dropped before aiortc (22).
- `per_packet.py`: NACK and statistics bookkeeping per packet in one call each (21) for
  what is not a simulcast layer.
- `repair.py`: video loss repair (7. NACK again).
- `simulcast_receive.py`: simulcast layers on one receiver, each layer's NACK tracking and
  frames in C (server/media/_layer_buffer.c), routing by MID (11, 12).
- `rtcp.py`: keyframe requests, REMB, receiver reports, the upstream cap, malformed
  REMBs dropped and NACK lists bounded (3, 4, 13, 15, 19), each connection's RTCP
  budget (23).
- `negotiation.py`: the negotiated codecs kept across offers, the stream id, the
  forward-only codecs, transport-cc on what the SFU receives (5, 6, 16, 18).
- `transport.py`: sending RTP without aiortc's sender, the packetizers, liveness
  (9, 10, 14).

The offers' numbers themselves need no internals: `payload_types.py` rewrites aiortc's
offer text, and aiortc takes its numbers from the answer.

`check()` runs every module's `problems()` and fails loudly;
tests/media/test_aiortc_internals.py runs it, and the SFU runs it once at start.
"""

from __future__ import annotations

from types import ModuleType

import aiortc

from server.media._rtp_receive import RtpDemux
from server.media.aiortc_internals import (
    arrival,
    datagrams,
    direct_receive,
    negotiation,
    per_packet,
    receive,
    repair,
    rtcp,
    simulcast_receive,
    transport,
)
from server.media.aiortc_internals.base import PINNED_VERSION, AiortcInternalsChanged, FrameSink
from server.media.aiortc_internals.datagrams import drop_oversized_datagrams
from server.media.aiortc_internals.direct_receive import (
    DirectReceive,
    FeedbackSender,
    ReceivePath,
)
from server.media.aiortc_internals.negotiation import (
    Negotiated,
    accept_transport_cc,
    forward_only_codecs,
    keep_negotiated,
    negotiated,
    negotiated_codec,
    negotiated_parameters,
    prefer_codecs,
    set_stream_id,
    transport_cc_negotiated,
)
from server.media.aiortc_internals.receive import (
    AudioPassThrough,
    LeveledFrame,
    PromptVideoBuffer,
    WholeFrame,
    audio_level,
    frame_gate,
    frame_held,
    frame_parts,
    tap_encoded_frames,
)
from server.media.aiortc_internals.repair import LayerRepair
from server.media.aiortc_internals.rtcp import (
    UpstreamCap,
    guard_rtcp,
    listen_rtcp,
    on_feedback,
    on_keyframe_request,
    rtcp_dropped,
    send_pli,
    send_remb,
)
from server.media.aiortc_internals.simulcast_receive import (
    LayeredVideoBuffer,
    LayerFrame,
    accept_header_extensions,
    route_by_mid,
    tap_simulcast,
    tap_video,
)
from server.media.aiortc_internals.transport import (
    Packetizer,
    RtpLink,
    check_consent,
    make_wire,
    packetizer,
    packets_received,
)

# Every module that touches an internal: `check()` runs each one's `problems()`.
MODULES: tuple[ModuleType, ...] = (
    receive,
    direct_receive,
    arrival,
    datagrams,
    per_packet,
    repair,
    simulcast_receive,
    rtcp,
    negotiation,
    transport,
)


def check(*, again: bool = False) -> None:
    """Fail loudly (AiortcInternalsChanged) if any internal the SFU relies on is missing
    or changed. The installed aiortc cannot change while the process runs, so a check that
    passed is not repeated (it reads aiortc's source: ~60 ms per SFU start) unless `again`
    (a test that removes an internal on purpose)."""
    if _passed and not again:
        return
    problems = []
    if aiortc.__version__ != PINNED_VERSION:
        problems.append(
            f"aiortc {aiortc.__version__} is installed; the SFU is written for {PINNED_VERSION}"
        )
    for module in MODULES:
        problems += module.problems()
    if problems:
        raise AiortcInternalsChanged("; ".join(problems))
    _passed.append(True)


_passed: list[bool] = []  # [True] once check() has passed in this process


__all__ = [
    "guard_rtcp",
    "drop_oversized_datagrams",
    "MODULES",
    "PINNED_VERSION",
    "AiortcInternalsChanged",
    "AudioPassThrough",
    "DirectReceive",
    "FeedbackSender",
    "FrameSink",
    "LayerFrame",
    "LayerRepair",
    "LayeredVideoBuffer",
    "LeveledFrame",
    "Negotiated",
    "Packetizer",
    "PromptVideoBuffer",
    "ReceivePath",
    "RtpDemux",
    "RtpLink",
    "UpstreamCap",
    "WholeFrame",
    "accept_header_extensions",
    "accept_transport_cc",
    "audio_level",
    "check",
    "check_consent",
    "forward_only_codecs",
    "frame_gate",
    "frame_held",
    "frame_parts",
    "keep_negotiated",
    "listen_rtcp",
    "make_wire",
    "negotiated",
    "negotiated_codec",
    "negotiated_parameters",
    "on_feedback",
    "on_keyframe_request",
    "packetizer",
    "packets_received",
    "rtcp_dropped",
    "prefer_codecs",
    "route_by_mid",
    "send_pli",
    "send_remb",
    "set_stream_id",
    "tap_encoded_frames",
    "tap_simulcast",
    "tap_video",
    "transport_cc_negotiated",
]
