"""RTCP feedback: keyframe requests, REMB, receiver reports, capping a publisher, and
what a connection's RTCP may cost (internals 3, 4, 13, 15, 19, 23).

3. `RTCRtpReceiver._send_rtcp_pli(media_ssrc)`: sends a PLI upstream.
4. `RTCRtpSender._send_keyframe()`: what a sender calls on a PLI/FIR from its remote
   peer; we rebind it per sender to forward the request to the publisher.
13. `RTCRtpSender._handle_rtcp_packet(packet)`: `on_feedback` wraps it per sender to see
   the subscriber's REMB and receiver reports (layer choice, simulcast_choice.py).
15. Asking a single-layer publisher for less (publisher_cap.py): a video
   `RTCRtpReceiver`'s `__remote_bitrate_estimator` (a `RemoteBitrateEstimator`, whose
   `add(arrival_time_ms=, abs_send_time=, payload_size=, ssrc=)` returns
   `(bitrate, ssrcs)` when `_handle_rtp_packet` should send a REMB) is wrapped by
   `UpstreamCap`, so the REMBs aiortc sends from its own estimate never exceed the cap
   (a later uncapped REMB would undo it), and the cap itself is sent at once with the
   receiver's `__rtcp_ssrc` as the sender, through `_send_rtcp`. A publisher that
   negotiated transport-cc has no estimator (negotiation.py): it gets the cap alone.
19. `RtpRouter.route_rtcp(packet)`: aiortc reads a REMB's SSRC list with
   `unpack_remb_fci`, which raises `struct.error` (not the `ValueError` it catches) for
   a REMB that announces more SSRCs than it carries; raised inside
   `RTCDtlsTransport._handle_rtcp_data`, that ends the connection's DTLS receive task, so
   one forged 20-byte REMB closed a participant's media. `guard_rtcp()` wraps the
   router so such a packet reaches nobody. It also bounds a NACK's list: aiortc's
   `RTCRtpSender._handle_rtcp_packet` awaits `_retransmit` once per number in
   `packet.lost`, which aiortc expands from each 4-byte entry to up to 17 numbers and
   never deduplicates: one 1484-byte NACK listed 6,256, about 5-10 ms of the event loop
   (a subscriber sending a few hundred a second stalled every room on the process).
   The list is deduplicated and cut at `NACK_LOST_MAX` (a sender keeps that many
   packets: rtp_output.HISTORY; a number older than those is refused anyway).
23. `RTCDtlsTransport._handle_rtcp_data(data)`: each SRTCP datagram, unprotected, to be
   parsed and routed. A participant holds its connection's keys, so it can send RTCP as
   fast as its link carries it, each datagram costing the loop its parse, routing and
   handling. `guard_rtcp()` gives each connection a `FeedbackBudget`: at most
   `RTCP_DATAGRAMS_PER_SECOND` datagrams and `RTCP_BYTES_PER_SECOND` bytes a second are
   handled (the rest dropped, counted), and its NACKs together name at most
   `NACK_NUMBERS_PER_SECOND` sequence numbers (a NACK past it names only what is left;
   nothing, when nothing is).

`problems()` lists what of these is missing or changed (run by `check()` in
__init__.py).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import struct
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from server.media.aiortc_internals.base import (
    ESTIMATOR_ATTR,
    RTCP_SSRC_ATTR,
    handle_rtp_source,
    needs,
    sending,
    takes,
    unconnected,
)
from server.signaling.ratelimit import TokenBucket


def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Ask the remote sender of `media_ssrc` for a keyframe (RTCP PLI), in the background."""
    sending.spawn(receiver._send_rtcp_pli(media_ssrc))


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` whenever `sender`'s remote peer sends a PLI or FIR."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


def on_feedback(
    sender: RTCRtpSender,
    on_remb: Callable[[int], None],
    on_loss: Callable[[float, int], None],
) -> None:
    """Call `on_remb(bit/s)` for each REMB and `on_loss(fraction, highest)` for each
    receiver report about this sender's stream that its remote peer sends (the fraction
    lost since its previous report, and the extended highest sequence number)."""
    handle = sender._handle_rtcp_packet

    async def seen_then_handle(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            with contextlib.suppress(ValueError):
                on_remb(unpack_remb_fci(packet.fci)[0])
        elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == sender._ssrc:
                    on_loss(report.fraction_lost / 256, report.highest_sequence)
        await handle(packet)

    sender._handle_rtcp_packet = seen_then_handle  # type: ignore[method-assign]


def send_remb(receiver: RTCRtpReceiver, bitrate: int, media_ssrcs: list[int]) -> None:
    """Send a REMB (receiver estimated maximum bitrate) for these streams, in the
    background, as a browser receiving them would."""
    packet = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=0, media_ssrc=0, fci=pack_remb_fci(bitrate, media_ssrcs)
    )
    sending.spawn(receiver._send_rtcp(packet))


class _CappedEstimator:
    """A receiver's own bit rate estimator whose REMBs never exceed `cap`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cap: int | None = None
        self.estimate: int | None = None  # its own latest estimate (bit/s)

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        remb = self.inner.add(
            arrival_time_ms=arrival_time_ms,
            abs_send_time=abs_send_time,
            payload_size=payload_size,
            ssrc=ssrc,
        )
        if remb is None:
            return None
        bitrate, ssrcs = remb
        self.estimate = bitrate
        return (bitrate if self.cap is None else min(bitrate, self.cap)), ssrcs


class UpstreamCap:
    """Asks the remote sender behind a video receiver for at most a bit rate (REMB)."""

    # Sent to lift a cap when the receiver has no estimate of its own (the publisher
    # sends no abs-send-time): a REMB stays in force until the next, so "no cap" has
    # to be a number, and this is above any camera's rate.
    UNCAPPED = 10_000_000

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self._receiver = receiver
        inner = getattr(receiver, ESTIMATOR_ATTR, None)
        self._estimator = _CappedEstimator(inner) if inner is not None else None
        if self._estimator is not None:
            setattr(receiver, ESTIMATOR_ATTR, self._estimator)

    def ask(self, bitrate: float | None, media_ssrc: int) -> int:
        """Cap the sender of `media_ssrc` at `bitrate` (None: lift the cap) now and in
        every REMB after; returns the bit rate sent."""
        cap = None if bitrate is None else int(bitrate)
        own = self._estimator.estimate if self._estimator is not None else None
        if self._estimator is not None:
            self._estimator.cap = cap
        if cap is None:
            value = own if own is not None else self.UNCAPPED
        else:
            value = cap if own is None else min(own, cap)
        sender_ssrc = getattr(self._receiver, RTCP_SSRC_ATTR, None) or 0
        packet = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP,
            ssrc=sender_ssrc,
            media_ssrc=0,
            fci=pack_remb_fci(value, [media_ssrc]),
        )
        sending.spawn(self._receiver._send_rtcp(packet))
        return value


def listen_rtcp(transport: RTCDtlsTransport, ssrc: int, callback: Callable[[Any], None]) -> None:
    """Receive the RTCP feedback (PLI, NACK, REMB) a peer sends about `ssrc`, an SSRC
    this side sends on by itself (a simulcast layer the tests play, not an aiortc
    sender's)."""

    class Listener:
        async def _handle_rtcp_packet(self, packet: Any) -> None:
            callback(packet)

    transport._rtp_router.register_sender(Listener(), ssrc)  # type: ignore[arg-type]


def whole_remb(fci: bytes) -> bool:
    """Whether a REMB's FCI carries every SSRC it announces (a non-REMB is left alone)."""
    return fci[:4] != b"REMB" or (len(fci) >= 8 and len(fci) >= 8 + 4 * fci[4])


NACK_LOST_MAX = 512  # the packets a subscriber's sender keeps (rtp_output.HISTORY)
# What a connection's RTCP may cost the loop. Chromium in the e2e rooms (two to three
# people, 10 % loss, retransmissions dropped) sent at most 82 datagrams and 5.1 KB in a
# second a connection (receiver reports, transport-cc feedback every 50-100 ms, a NACK per
# loss, PLIs); a subscriber to sixteen videos at 10 % loss would send a few hundred NACKs
# a second, ~20 KB. aiortc parses a NACK into a list, ~1 µs a byte; a NACK's numbers are
# each a resend check; a number cut here is NACKed again by the subscriber. The costs
# and what the budget bounds: docs/benchmarks.md ("RTCP budget").
RTCP_DATAGRAMS_PER_SECOND = 1000
RTCP_DATAGRAMS_BURST = 1000
RTCP_BYTES_PER_SECOND = 64 * 1024
RTCP_BYTES_BURST = 64 * 1024
NACK_NUMBERS_PER_SECOND = 2000
NACK_NUMBERS_BURST = 4 * NACK_LOST_MAX
_BUDGET_ATTR = "_pairwise_feedback_budget"


class FeedbackBudget:
    """What one connection's RTCP may still cost: datagrams handled, their bytes, and
    sequence numbers NACKed (each a resend check)."""

    def __init__(self) -> None:
        self.datagrams = TokenBucket(RTCP_DATAGRAMS_PER_SECOND, RTCP_DATAGRAMS_BURST)
        self.bytes = TokenBucket(RTCP_BYTES_PER_SECOND, RTCP_BYTES_BURST)
        self.nacked = TokenBucket(NACK_NUMBERS_PER_SECOND, NACK_NUMBERS_BURST)
        self.datagrams_dropped = 0
        self.numbers_cut = 0  # NACKed numbers past the budget (after the dedupe and cut)

    def admit(self, size: int) -> bool:
        """Whether a datagram of `size` bytes is handled (spending its share) or dropped
        (counted)."""
        if self.datagrams.seconds_until(1) == 0 and self.bytes.seconds_until(size) == 0:
            self.datagrams.take()
            self.bytes.take(size)
            return True
        self.datagrams_dropped += 1
        return False


def feedback_budget(router: RtpRouter) -> FeedbackBudget:
    """The budget of the connection whose RTP and RTCP `router` routes."""
    budget = getattr(router, _BUDGET_ATTR, None)
    if budget is None:
        budget = FeedbackBudget()
        setattr(router, _BUDGET_ATTR, budget)
    return budget


def rtcp_dropped(pc: Any) -> tuple[int, int]:
    """What the budgets of `pc`'s transports dropped so far: (datagrams not handled,
    NACKed sequence numbers cut)."""
    routers = {
        id(t.receiver.transport): t.receiver.transport._rtp_router
        for t in pc.getTransceivers()
        if t.receiver.transport is not None
    }
    datagrams = numbers = 0
    for router in routers.values():
        budget = getattr(router, _BUDGET_ATTR, None)
        if budget is not None:
            datagrams += budget.datagrams_dropped
            numbers += budget.numbers_cut
    return datagrams, numbers


def guard_rtcp() -> None:
    """From now on, an RTCP REMB that announces more SSRCs than it carries is routed to
    nobody (internal 19) instead of ending the connection's RTCP handling, a NACK names
    each sequence number once, at most `NACK_LOST_MAX` of them, and each connection's
    RTCP keeps to its `FeedbackBudget` (internal 23) (idempotent)."""
    route = RtpRouter.route_rtcp
    handle = RTCDtlsTransport._handle_rtcp_data
    if getattr(route, "guards_rtcp", False) and getattr(handle, "guards_rtcp", False):
        return

    @functools.wraps(handle)
    async def handle_budgeted(self: RTCDtlsTransport, data: bytes) -> None:
        if feedback_budget(self._rtp_router).admit(len(data)):
            await handle(self, data)

    @functools.wraps(route)
    def route_guarded(self: RtpRouter, packet: Any) -> Any:
        if isinstance(packet, RtcpPsfbPacket):
            if packet.fmt == RTCP_PSFB_APP and not whole_remb(packet.fci):
                return set()
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            # the newest numbers kept (a NACK lists them ascending; the oldest are the
            # likeliest gone from the sender's history)
            lost = list(dict.fromkeys(packet.lost))[-NACK_LOST_MAX:]
            budget = feedback_budget(self)
            allowed = budget.nacked.take_up_to(len(lost))
            packet.lost = lost[len(lost) - allowed :]
            budget.numbers_cut += len(lost) - allowed
            if not packet.lost:
                return set()
        try:
            return route(self, packet)
        except struct.error:  # any other short field aiortc reads unguarded
            return set()

    route_guarded.guards_rtcp = True  # type: ignore[attr-defined]
    handle_budgeted.guards_rtcp = True  # type: ignore[attr-defined]
    if not getattr(route, "guards_rtcp", False):
        RtpRouter.route_rtcp = route_guarded  # type: ignore[method-assign]
    if not getattr(handle, "guards_rtcp", False):
        RTCDtlsTransport._handle_rtcp_data = handle_budgeted  # type: ignore[method-assign]


def problems() -> list[str]:
    found = needs(
        handle_rtp_source(),
        "RTCRtpReceiver._handle_rtp_packet",
        "if self.__remote_bitrate_estimator is not None:",
        "remb = self.__remote_bitrate_estimator.add(",
        "fci=pack_remb_fci(*remb),",
    )
    if not takes(RTCRtpReceiver, "_send_rtcp_pli", "media_ssrc"):
        found.append("RTCRtpReceiver._send_rtcp_pli(media_ssrc) is gone or changed")
    if not takes(RTCRtpSender, "_send_keyframe"):
        found.append("RTCRtpSender._send_keyframe() is gone or changed")
    elif "self._send_keyframe()" not in inspect.getsource(RTCRtpSender._handle_rtcp_packet):
        found.append("RTCRtpSender no longer calls _send_keyframe on PLI/FIR")
    if not takes(RTCRtpSender, "_handle_rtcp_packet", "packet") or (
        "await recipient._handle_rtcp_packet(packet)"
        not in inspect.getsource(RTCDtlsTransport._handle_rtcp_data)
    ):
        found.append("RTCRtpSender._handle_rtcp_packet(packet) is no longer how RTCP arrives")
    if "self._rtp_router.route_rtcp(packet)" not in inspect.getsource(
        RTCDtlsTransport._handle_rtcp_data
    ) or not takes(RtpRouter, "route_rtcp", "packet"):
        found.append("RTCP no longer reaches its recipients through RtpRouter.route_rtcp")
    if "await self._handle_rtcp_data(data)" not in inspect.getsource(RTCDtlsTransport._recv_next):
        found.append("SRTCP no longer reaches RTCDtlsTransport._handle_rtcp_data")
    if not takes(RTCRtpReceiver, "_send_rtcp", "packet") or not takes(
        RtpRouter, "register_sender", "sender", "ssrc"
    ):
        found.append("RTCRtpReceiver._send_rtcp or RtpRouter.register_sender changed")
    with unconnected() as pc:
        video = pc.addTransceiver("video")
        estimator = getattr(video.receiver, ESTIMATOR_ATTR, None)
        if not takes(
            type(estimator), "add", "arrival_time_ms", "abs_send_time", "payload_size", "ssrc"
        ):
            found.append(f"video receivers' {ESTIMATOR_ATTR} no longer has add(...)")
        if not hasattr(video.receiver, RTCP_SSRC_ATTR):
            found.append(f"RTCRtpReceiver instances have no {RTCP_SSRC_ATTR}")
    return found
