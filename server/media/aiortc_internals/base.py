"""What the modules of this package share: the error, the pinned version, and helpers
for their checks."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pylibsrtp
from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from pylibsrtp import _binding

from server.tasks import BackgroundTasks

PINNED_VERSION = "1.16.0"
QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
NACK_ATTR = "_RTCRtpReceiver__nack_generator"
JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"
RTX_ATTR = "_RTCRtpReceiver__rtx_ssrc"
ESTIMATOR_ATTR = "_RTCRtpReceiver__remote_bitrate_estimator"
RTCP_SSRC_ATTR = "_RTCRtpReceiver__rtcp_ssrc"
RX_PACKETS_ATTR = "_RTCDtlsTransport__rx_packets"
# RTCP feedback (PLI, NACK, REMB) on its way out, held until sent.
sending = BackgroundTasks()

FrameSink = Callable[[RTCRtpCodecParameters, JitterFrame], None]


class AiortcInternalsChanged(RuntimeError):
    """The installed aiortc no longer has what the SFU relies on."""


def takes(cls: type, name: str, *parameters: str) -> bool:
    """Whether `cls` still has the method `name(self, *parameters)`."""
    method = getattr(cls, name, None)
    return method is not None and list(inspect.signature(method).parameters) == [
        "self",
        *parameters,
    ]


@contextmanager
def unconnected() -> Iterator[RTCPeerConnection]:
    """A PeerConnection never negotiated, to check its objects' instance attributes."""
    pc = RTCPeerConnection()
    try:
        yield pc
    finally:
        # Nothing was negotiated, so there is nothing to stop: dropping it is enough.
        pc.remove_all_listeners()


def handle_rtp_source() -> str:
    """The source of `RTCRtpReceiver._handle_rtp_packet`, which several modules patch."""
    return inspect.getsource(RTCRtpReceiver._handle_rtp_packet)


def needs(source: str, where: str, *snippets: str) -> list[str]:
    """A problem for each snippet `source` (the code of `where`) no longer contains."""
    return [f"{where} no longer does {s}" for s in snippets if s not in source]


def srtp_address(session: pylibsrtp.Session) -> int:
    """The address of a pylibsrtp session's srtp_t (`_srtp[0]`), for the C send and receive
    paths; valid while the session object lives."""
    return int(_binding.ffi.cast("uintptr_t", session._srtp[0]))
