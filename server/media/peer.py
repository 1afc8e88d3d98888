"""One participant's RTCPeerConnection with the SFU, and how it is negotiated.

Negotiation: the client makes the first offer (its own audio and video, sent to the
SFU) and the SFU answers. From then on **the SFU is always the offerer**: whenever
the tracks this participant should receive change, the SFU sends `media_renegotiate`
with an offer and waits for the client's `media_answer`. One SFU offer is outstanding
at a time; changes that arrive meanwhile are folded into the next offer. The client
never offers on a live connection, so there is no glare. A client that needs a new
connection (ICE failed, network change) sends a fresh offer (`media_reconnect`).

Every SFU offer names the owner of each forwarded m-line (`tracks: {mid: {identity,
kind}}`), and each forwarded track's stream id (msid) is its owner's identity, so a
client with several others in the room knows whose video is whose. Re-offers keep
every negotiated payload type and header-extension id (`payload_types.Numbering`).

aiortc cannot remove an m-line, so a forwarded track that ends leaves an inactive
m-line behind; a room with much churn grows its SDP until the next reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp

from server.errors import Conflict, InvalidInput
from server.media import aiortc_internals as internals
from server.media import forward_only
from server.media.downlink_pause import DownlinkPause
from server.media.forwarding import ForwardedTrack, Publication
from server.media.liveness import Liveness
from server.media.payload_types import Numbering
from server.media.refused_sections import Refusals
from server.media.resend_room import ResendRoom
from server.media.simulcast import SimulcastSection, annotate, parse_offer
from server.media.simulcast_choice import Estimate

log = logging.getLogger("pairwise.media.peer")

MAX_SDP_BYTES = 32 * 1024
MAX_MEDIA_SECTIONS = 64
MAX_CANDIDATES = 40

# (sdp, revision, tracks): an SFU offer for the client, with the owner of each m-line.
OfferSink = Callable[[str, int, dict[str, dict[str, str]]], Awaitable[None]]
# msid-id (RFC 8830): 1-64 token characters; an identity that is not one is left out.
MSID_ID = re.compile(r"^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]{1,64}$")


class InvalidSdp(InvalidInput):
    code = "invalid_sdp"


class NoOfferPending(Conflict):
    code = "no_offer_pending"


def sanitize_remote_sdp(sdp: str) -> str:
    """Check a client's SDP against limits and drop mDNS (`.local`) candidates.

    aiortc cannot resolve a browser's `.local` candidates and stalls about a second
    trying; the connection still forms through peer-reflexive candidates.
    """
    if len(sdp) > MAX_SDP_BYTES:
        raise InvalidSdp(f"the SDP is longer than {MAX_SDP_BYTES} bytes")
    if not sdp.startswith("v=0"):
        raise InvalidSdp("the SDP must start with v=0")
    lines = sdp.replace("\r\n", "\n").split("\n")
    kept = [
        line for line in lines if not (line.startswith("a=candidate:") and _is_mdns_candidate(line))
    ]
    if sum(line.startswith("m=") for line in kept) > MAX_MEDIA_SECTIONS:
        raise InvalidSdp(f"more than {MAX_MEDIA_SECTIONS} media sections")
    if sum(line.startswith("a=candidate:") for line in kept) > MAX_CANDIDATES:
        raise InvalidSdp(f"more than {MAX_CANDIDATES} ICE candidates")
    return "\r\n".join(kept)


def _is_mdns_candidate(line: str) -> bool:
    parts = line.split()
    return len(parts) > 4 and parts[4].lower().endswith(".local")


def _media_ssrcs(sdp: str) -> dict[str, int]:
    """mid → the first (media, not RTX) SSRC each m-line declares."""
    found: dict[str, int] = {}
    for media in aiortc_sdp.SessionDescription.parse(sdp).media:
        if media.ssrc and media.rtp.muxId:
            found[media.rtp.muxId] = media.ssrc[0].ssrc
    return found


@dataclass
class Outgoing:
    """A publication forwarded to this peer: its sendonly transceiver and track."""

    publication: Publication
    track: ForwardedTrack
    transceiver: RTCRtpTransceiver
    negotiated: bool = False


@dataclass
class Incoming:
    """A track this peer publishes: the receiver's transceiver and the media SSRC."""

    kind: str
    transceiver: RTCRtpTransceiver
    publication: Publication | None
    generation: int = 0
    ssrc: int | None = None


@dataclass
class Counters:
    """Totals from getStats at the last health sample, to turn into rates."""

    at: float = 0.0
    packets_in: int = 0
    packets_lost: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    rtcp_dropped: int = 0  # the RTCP budget's (aiortc_internals/rtcp.py): datagrams
    nack_numbers_cut: int = 0  # and NACKed numbers


@dataclass
class LinkQuality:
    """The latest health sample of this peer."""

    inbound_kbps: float = 0.0
    outbound_kbps: float = 0.0
    loss_percent: float = 0.0
    lossy_samples: int = 0  # consecutive samples at or above the step-down threshold
    rtt_ms: float | None = None
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    sampled_at: float | None = None
    event_at: float = 0.0  # monotonic time of the last MediaQualitySampled event
    counters: Counters = field(default_factory=Counters)

    def record_loss(self, loss_percent: float, threshold: float) -> None:
        """One sample's loss: counts consecutive samples at or above `threshold`."""
        self.loss_percent = loss_percent
        self.lossy_samples = self.lossy_samples + 1 if loss_percent >= threshold else 0


class Peer:
    """One participant's PeerConnection: publishing in, forwarded tracks out."""

    def __init__(
        self,
        room: str,
        identity: str,
        configuration: RTCConfiguration,
        send_offer: OfferSink,
        answer_timeout: float,
    ) -> None:
        self.room = room
        self.identity = identity
        self.pc = RTCPeerConnection(configuration)
        self.created_at = time.monotonic()
        self.connected_at: float | None = None
        self.liveness = Liveness(self.pc, self.created_at)  # for one who sends nothing
        self.incoming: list[Incoming] = []
        self.outgoing: dict[Publication, Outgoing] = {}
        self.quality = LinkQuality()
        self.revision = 0
        self.closed = False
        self._send_offer = send_offer
        self._answer_timeout = answer_timeout
        self._lock = asyncio.Lock()
        self._answered: asyncio.Future[None] | None = None
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self._ssrcs: dict[str, int] = {}
        self._numbering = Numbering()
        self.refusals = Refusals()  # sections of the first offer answered with port 0
        # Forward-only codecs (VP9, AV1): the ones this client's offer names (it decodes
        # them), and the ones it may publish with (every other subscriber takes them).
        self.decodes: set[str] = set()
        self.may_send: Collection[str] = forward_only.ALL
        self.sources: dict[str, str] = {}  # mid → "camera" or "screen", as the client named them
        self.simulcast: dict[str, SimulcastSection] = {}  # mid → its layers, from the offer
        self.remb = Estimate()  # the client's receive estimates (REMB, bit/s)
        self.resend_room = ResendRoom(self.remb)  # what that leaves for resends, on all its streams
        self.downlink = DownlinkPause()  # its video tracks paused for its link
        self.downlink_timer: asyncio.TimerHandle | None = None  # the next trial of one
        # Its feedback acted on (layer choice, caps, the downlink check): when last, and
        # the deferred next (the SFU's `FEEDBACK_GAP_S`).
        self.feedback_at = -math.inf
        self.feedback_timer: asyncio.TimerHandle | None = None
        self.on_track: Callable[[Peer, Incoming], None] = lambda peer, incoming: None
        self.on_failed: Callable[[Peer, str], None] = lambda peer, reason: None
        self.on_negotiated: Callable[[Peer, Outgoing], None] = lambda peer, outgoing: None
        self.pc.on("connectionstatechange", self._state_changed)
        self.pc.on("track", self._track)

    @property
    def state(self) -> str:
        return self.pc.connectionState

    async def accept_offer(self, sdp: str) -> str:
        """Apply the client's first offer; return the SFU's answer."""
        sanitized = sanitize_remote_sdp(sdp)
        self.decodes = forward_only.offered(sanitized)
        clean = self.refusals.take(forward_only.only_profile_0(sanitized), self.may_send)
        async with self._lock:
            try:
                self._ssrcs = _media_ssrcs(clean)
                self.simulcast = parse_offer(clean)
                with internals.forward_only_codecs(self.may_send):
                    await self.pc.setRemoteDescription(RTCSessionDescription(clean, "offer"))
                internals.route_by_mid(self.pc)
                internals.accept_transport_cc(self.pc, clean)
                for transceiver in self.pc.getTransceivers():
                    section = self.simulcast.get(transceiver.mid or "")
                    if section is not None:
                        internals.accept_header_extensions(transceiver, section.extensions)
            except Exception as exc:
                raise InvalidSdp(f"the offer was refused: {_describe(exc)}") from None
            if not any(t.kind in ("audio", "video") for t in self.pc.getTransceivers()):
                refused = ", ".join(f"{r.kind}: {r.reason}" for r in self.refusals.sections)
                raise InvalidSdp(
                    "the offer has no audio or video section the SFU can take"
                    + (f" (refused {refused})" if refused else "")
                )
            try:
                # aiortc accepts some broken offers (a media section without a usable
                # transport) and only fails while answering them.
                await self.pc.setLocalDescription(await self.pc.createAnswer())
            except Exception as exc:
                raise InvalidSdp(f"the offer was refused: {_describe(exc)}") from None
            answer = str(self.pc.localDescription.sdp)
            self._numbering.learn(clean)
            self._numbering.learn(answer, answer=True)
            return annotate(self.refusals.restore(answer), self.simulcast)

    async def accept_answer(self, sdp: str, revision: int) -> None:
        """Apply the client's answer to the SFU's outstanding offer."""
        if self._answered is None or self._answered.done() or revision != self.revision:
            raise NoOfferPending(f"no SFU offer with revision {revision} is waiting for an answer")
        clean = self.refusals.strip(sanitize_remote_sdp(sdp))
        try:
            # Its forwarded m-lines offered only their publisher's codec (add_outgoing).
            with internals.forward_only_codecs(forward_only.ALL):
                await self.pc.setRemoteDescription(RTCSessionDescription(clean, "answer"))
        except Exception as exc:
            raise InvalidSdp(f"the answer was refused: {_describe(exc)}") from None
        self._numbering.learn(clean, answer=True)
        self._answered.set_result(None)

    def add_outgoing(self, publication: Publication, track: ForwardedTrack) -> None:
        if self.closed or self.pc.signalingState == "closed":
            return  # closing (its failure is being handled); never fail someone else's offer
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        if MSID_ID.match(publication.identity):
            internals.set_stream_id(transceiver.sender, publication.identity)
        codec = publication.codec
        if codec is not None and forward_only.covers(codec):
            # VP9 or AV1: that codec only (the SFU cannot transcode it; the subscriber's
            # offer named it: Sfu._forward).
            internals.prefer_codecs(transceiver, forward_only.preferences(codec))
        else:
            # The publisher's codec first: same codec on both sides means pass-through.
            capabilities = RTCRtpSender.getCapabilities(publication.kind).codecs
            mime = codec.mimeType.lower() if codec is not None else ""
            preferred = sorted(capabilities, key=lambda c: c.mimeType.lower() != mime)
            transceiver.setCodecPreferences(preferred)
        self.outgoing[publication] = Outgoing(publication, track, transceiver)
        self.renegotiate()

    async def remove_outgoing(self, *publications: Publication) -> None:
        """Stop forwarding `publications` to this peer, in one re-offer: a participant
        who leaves ends their audio and video together (one offer per track was two
        renegotiations for everyone else)."""
        removed = [self.outgoing.pop(p) for p in publications if p in self.outgoing]
        if not removed:
            return
        for outgoing in removed:
            outgoing.publication.unsubscribe(outgoing.track)
            outgoing.transceiver.direction = "inactive"
        # Stopping a sender sends RTCP BYE: the subscriber's track ends now.
        for outgoing in removed:
            with contextlib.suppress(Exception):
                await outgoing.transceiver.stop()
        self.renegotiate()

    def renegotiate(self) -> None:
        """Offer the current set of forwarded tracks to the client (soon, once)."""
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._renegotiate())

    def media_ssrc(self, incoming: Incoming) -> int | None:
        if incoming.ssrc is not None:
            return incoming.ssrc
        sources = incoming.transceiver.receiver.getSynchronizationSources()
        return sources[0].source if sources else None

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.liveness.stop()
        for timer in (self.downlink_timer, self.feedback_timer):
            if timer is not None:
                timer.cancel()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        for incoming in self.incoming:
            if incoming.publication is not None:
                incoming.publication.detach(incoming.generation)
        for outgoing in list(self.outgoing.values()):
            outgoing.publication.unsubscribe(outgoing.track)
        self.outgoing.clear()
        try:
            await self.pc.close()
        except Exception:  # a connection that a broken offer left half-built
            log.warning("closing a half-built peer connection failed", exc_info=True)

    async def _renegotiate(self) -> None:
        try:
            while self._dirty and not self.closed:
                async with self._lock:
                    if self.pc.signalingState != "stable":
                        return  # the first offer/answer is still in flight; it reschedules
                    self._dirty = False
                    await self._offer_and_wait()
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            log.warning(
                "client did not answer the SFU offer",
                extra={"room": self.room, "identity": self.identity},
            )
            self.on_failed(self, "renegotiation_timeout")
        except Exception:
            log.exception(
                "renegotiation failed", extra={"room": self.room, "identity": self.identity}
            )
            self.on_failed(self, "renegotiation_failed")

    def tracks(self) -> dict[str, dict[str, str]]:
        """mid → the owner, kind and source ("camera", "microphone" or "screen") of each
        forwarded track (negotiated or offered)."""
        return {
            outgoing.transceiver.mid: {
                "identity": outgoing.publication.identity,
                "kind": outgoing.publication.kind,
                "source": outgoing.publication.source,
            }
            for outgoing in self.outgoing.values()
            if outgoing.transceiver.mid is not None
        }

    async def _offer_and_wait(self) -> None:
        saved = internals.negotiated(self.pc)
        with internals.forward_only_codecs(forward_only.ALL):  # for add_outgoing's choices
            offer = await self.pc.createOffer()  # never suspends: nothing starts in between
        internals.keep_negotiated(saved)
        sdp = self._numbering.stabilize(offer.sdp)
        await self.pc.setLocalDescription(RTCSessionDescription(sdp, "offer"))
        self.revision += 1
        self._answered = asyncio.get_running_loop().create_future()
        offer_sdp = annotate(self.refusals.restore(self.pc.localDescription.sdp), self.simulcast)
        await self._send_offer(offer_sdp, self.revision, self.tracks())
        async with asyncio.timeout(self._answer_timeout):
            await asyncio.shield(self._answered)
        for outgoing in list(self.outgoing.values()):
            if not outgoing.negotiated:
                outgoing.negotiated = True
                self.on_negotiated(self, outgoing)

    def _track(self, track: object) -> None:
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track:
                incoming = Incoming(
                    kind=transceiver.kind,
                    transceiver=transceiver,
                    publication=None,
                    ssrc=self._ssrcs.get(transceiver.mid or ""),
                )
                self.incoming.append(incoming)
                self.on_track(self, incoming)

    def dead_reason(self) -> str | None:
        """Why this connection can no longer carry media, or None while it can.

        aiortc has no `disconnected` state: a connection is `failed` when ICE or DTLS
        failed and `closed` when the far end closed it (a DTLS close_notify: the page
        closed its RTCPeerConnection) or ICE consent expired (~31 s after the last
        answered check: aiortc then closes everything and reports `closed`, never
        `failed`). A connection this side closed is not dead, it is gone.
        """
        if self.closed:
            return None
        state = self.pc.connectionState
        if state == "failed":
            return "ice_failed" if self.pc.iceConnectionState == "failed" else "dtls_failed"
        if state == "closed":
            return "connection_closed"
        return None

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
            self.liveness.restart(self.connected_at)
        reason = self.dead_reason()
        if reason is not None:
            self.on_failed(self, reason)


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return re.sub(r"\s+", " ", text)[:200]
