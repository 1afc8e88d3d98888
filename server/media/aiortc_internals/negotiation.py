"""Negotiation: the codecs and extensions kept across offers, the stream id, the
forward-only codecs, and transport-cc for what the SFU receives (internals 5, 6, 16, 18).

5. `RTCRtpTransceiver._codecs` and `._headerExtensions`: the negotiated codecs (`[0]`
   is what the sender uses) and header extensions. `createOffer()` resets them on
   *every* transceiver to aiortc's defaults until the answer arrives; a receiver or
   sender that starts in between (DTLS connecting while the SFU's first re-offer is
   out) would take aiortc's numbers instead of the negotiated ones: its receiver drops
   every packet, and the transport's extension map misreads the publisher's packets
   until the DTLS transport dies. `keep_negotiated` puts them back right after
   `createOffer()`.
6. `RTCRtpSender._stream_id`: the stream id aiortc writes into the m-line's `a=msid`
   (a random UUID); the SFU sets it to the track owner's identity, so a browser's
   `ontrack` event names the participant in `event.streams[0].id`.
16. Forward-only codecs (forward_only.py): `rtcpeerconnection.CODECS`, the codec table
   `createOffer` and `setRemoteDescription` negotiate from (aiortc has no VP9 or AV1),
   is replaced by `_CodecTable`, which adds VP9 and AV1 only inside
   `forward_only_codecs(...)` (a context variable: the SFU's own calls, never another
   PeerConnection in the process, such as a test's aiortc client, which would offer
   codecs it cannot decode); there `aiortc.rtp.DYNAMIC_PAYLOAD_TYPES` (which
   `find_common_codecs` reads) also takes 35-63, where Chrome numbers AV1. `RTCRtpTransceiver._preferred_codecs` is set directly
   (`setCodecPreferences` accepts only `aiortc.codecs`' table). aiortc's `depayload`
   leaves their payloads as they came, so `PromptVideoBuffer` hands on each packet's
   payload too (`frame_parts`): those are forwarded unchanged.

18. transport-cc toward a publisher (transport_feedback.py): aiortc negotiates neither the
   transport-wide sequence number extension nor `a=rtcp-fb:<pt> transport-cc`
   (`find_common_header_extensions` keeps only `codecs.HEADER_EXTENSIONS`' URIs, and
   `find_common_codecs` only the feedback its own codecs list). `accept_transport_cc`
   adds both, as the offer numbered them, to `_headerExtensions` and `_codecs` of each
   transceiver whose remote side sends (the answer is built from them), configures the
   DTLS transport's `_rtp_header_extensions_map` with the extension's id (aiortc's
   `setRemoteDescription` of a later answer resets `_headerExtensions`, and a receiver
   that starts after that would leave it out; `configure` never removes an id), and
   sets the receiver's
   `__remote_bitrate_estimator` to None: the browser now estimates its uplink itself
   from the feedback, and a REMB from aiortc's estimate would only hold it back (the
   publisher cap's REMB still limits it: Chrome's `SendSideBandwidthEstimation` takes a
   REMB as a ceiling with transport-cc too). Sections the SFU sends on never get it:
   the SFU stamps no transport sequence numbers, so subscribers keep sending REMB.

The offers' numbers themselves need no internals: `payload_types.py` rewrites aiortc's
offer text, and aiortc takes its numbers from the answer.

`problems()` lists what of these is missing or changed (run by `check()` in
__init__.py).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import aiortc
import aiortc.rtp
from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc import codecs as _codecs_module
from aiortc import rtcpeerconnection as _pc_module
from aiortc.rtcrtpparameters import (
    RTCRtcpFeedback,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
)
from aiortc.sdp import SessionDescription

from server.media import forward_only
from server.media.aiortc_internals.base import (
    ESTIMATOR_ATTR,
    unconnected,
)
from server.media.transport_feedback import URI as TRANSPORT_CC_URI

TRANSPORT_CC = RTCRtcpFeedback(type="transport-cc")


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """Name the stream the sender's track belongs to (`a=msid:<stream_id> <track>`)."""
    sender._stream_id = stream_id


Negotiated = dict[RTCRtpTransceiver, tuple[list[Any], list[Any]]]


def negotiated(pc: RTCPeerConnection) -> Negotiated:
    """Each negotiated transceiver's codecs and header extensions (before an offer)."""
    return {
        t: (list(t._codecs), list(t._headerExtensions))
        for t in pc.getTransceivers()
        if t.currentDirection is not None and t._codecs
    }


def keep_negotiated(saved: Negotiated) -> None:
    """Undo `createOffer()`'s reset of the negotiated transceivers' parameters."""
    for transceiver, (codecs, extensions) in saved.items():
        transceiver._codecs = codecs
        transceiver._headerExtensions = extensions


def negotiated_parameters(transceiver: RTCRtpTransceiver) -> tuple[list[Any], list[Any]]:
    """The transceiver's negotiated codecs (`[0]` first, then e.g. its RTX) and header
    extensions."""
    return list(transceiver._codecs), list(transceiver._headerExtensions)


# The forward-only codecs the SFU may negotiate in this context; None: not the SFU's.
_forward_only: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar(
    "pairwise_forward_only", default=None
)


class _CodecTable(Mapping[str, list[RTCRtpCodecParameters]]):
    """aiortc's codec table, plus the forward-only codecs allowed in this context."""

    def __init__(self, base: dict[str, list[RTCRtpCodecParameters]]) -> None:
        self._base = base

    def __getitem__(self, kind: str) -> list[RTCRtpCodecParameters]:
        codecs = self._base[kind]
        extra = _forward_only.get()
        return [*codecs, *forward_only.codecs(extra)] if extra and kind == "video" else codecs

    def __iter__(self) -> Iterator[str]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)


class _DynamicPayloadTypes:
    """aiortc's dynamic payload types (96-127), and in the SFU's context also 35-63:
    Chrome numbers codecs there once 96-127 are taken (AV1 is 45). aiortc keeps its own
    number for a codec the offer numbers outside its range (`find_common_codecs`),
    answering AV1 as 105 and dropping its RTX: the subscriber then drops every packet."""

    def __contains__(self, pt: object) -> bool:
        if not isinstance(pt, int):
            return False
        return 96 <= pt < 128 or (_forward_only.get() is not None and 35 <= pt < 64)


@contextlib.contextmanager
def forward_only_codecs(mimes: Collection[str]) -> Iterator[None]:
    """Within this block (this task only), aiortc's offers and answers may negotiate
    these forward-only codecs (forward_only.py) as well as its own, numbered as the
    browser numbers them."""
    if not isinstance(_pc_module.CODECS, _CodecTable):
        _pc_module.CODECS = _CodecTable(_codecs_module.CODECS)  # type: ignore[assignment]
        aiortc.rtp.DYNAMIC_PAYLOAD_TYPES = _DynamicPayloadTypes()  # type: ignore[assignment]
    token = _forward_only.set(frozenset(mimes))
    try:
        yield
    finally:
        _forward_only.reset(token)


def prefer_codecs(transceiver: RTCRtpTransceiver, codecs: list[Any]) -> None:
    """`setCodecPreferences` that also takes the forward-only codecs."""
    transceiver._preferred_codecs = list(codecs)


def negotiated_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """The codec the transceiver's sender uses (after negotiation), or None."""
    codecs: list[RTCRtpCodecParameters] = getattr(transceiver, "_codecs", [])
    return codecs[0] if codecs else None


def accept_transport_cc(pc: RTCPeerConnection, offer: str) -> list[RTCRtpTransceiver]:
    """Negotiate transport-cc (the transport-wide sequence number extension and the
    `transport-cc` feedback, numbered as `offer` numbers them) on every section the
    remote side sends on where its offer has both, before the answer is made; their
    receivers run no REMB estimator. Returns those transceivers."""
    by_mid = {t.mid: t for t in pc.getTransceivers()}
    accepted = []
    for media in SessionDescription.parse(offer).media:
        transceiver = by_mid.get(media.rtp.muxId)
        if (
            transceiver is None
            or media.kind not in ("audio", "video")
            or media.direction not in ("sendrecv", "sendonly")
        ):
            continue
        ident = next((x.id for x in media.rtp.headerExtensions if x.uri == TRANSPORT_CC_URI), None)
        offered = {c.payloadType for c in media.rtp.codecs if TRANSPORT_CC in c.rtcpFeedback}
        if ident is None or not offered:
            continue
        extension = RTCRtpHeaderExtensionParameters(id=ident, uri=TRANSPORT_CC_URI)
        if all(x.uri != TRANSPORT_CC_URI for x in transceiver._headerExtensions):
            transceiver._headerExtensions.append(extension)
        # The transport's map now, too: the receiver configures it from its parameters
        # only when it starts, and an answer to the SFU's first re-offer, applied before
        # that, resets `_headerExtensions` to aiortc's own list (which lacks it).
        transceiver.receiver.transport._rtp_header_extensions_map.configure(
            RTCRtpReceiveParameters(headerExtensions=[extension])
        )
        for codec in transceiver._codecs:
            if codec.payloadType in offered and TRANSPORT_CC not in codec.rtcpFeedback:
                codec.rtcpFeedback.append(TRANSPORT_CC)
        setattr(transceiver.receiver, ESTIMATOR_ATTR, None)
        accepted.append(transceiver)
    return accepted


def transport_cc_negotiated(transceiver: RTCRtpTransceiver) -> bool:
    """Whether the transceiver's negotiated header extensions include transport-cc's."""
    return any(x.uri == TRANSPORT_CC_URI for x in transceiver._headerExtensions)


def problems() -> list[str]:
    found = []
    offer = inspect.getsource(RTCPeerConnection.createOffer)
    if "transceiver._codecs = " not in offer or "await " in offer.split('"""', 2)[2]:
        found.append(
            "RTCPeerConnection.createOffer changed (how it resets _codecs, or it now awaits)"
        )
    describe = inspect.getsource(_pc_module.create_media_description_for_transceiver)
    if "transceiver.sender._stream_id" not in describe:
        found.append("the m-line's a=msid no longer comes from RTCRtpSender._stream_id")
    if (
        "CODECS[transceiver.kind][:], transceiver._preferred_codecs" not in offer
        or "find_common_codecs(CODECS[media.kind], media.rtp.codecs)"
        not in inspect.getsource(RTCPeerConnection.setRemoteDescription)
        or not isinstance(getattr(_codecs_module, "CODECS", None), dict)
    ):
        found.append("aiortc no longer negotiates from rtcpeerconnection.CODECS")
    if "if c.payloadType in rtp.DYNAMIC_PAYLOAD_TYPES:" not in inspect.getsource(
        _pc_module.find_common_codecs
    ):
        found.append("find_common_codecs no longer reads rtp.DYNAMIC_PAYLOAD_TYPES")
    describe_source = inspect.getsource(_pc_module.create_media_description_for_transceiver)
    if (
        "headerExtensions=transceiver._headerExtensions" not in describe_source
        or "codecs=transceiver._codecs" not in describe_source
    ):
        found.append("the answer's m-line is no longer built from _codecs and _headerExtensions")
    if "headerExtensions=transceiver._headerExtensions" not in inspect.getsource(
        RTCPeerConnection._RTCPeerConnection__remoteRtp  # type: ignore[attr-defined]
    ):
        found.append("a receiver's parameters no longer come from _headerExtensions")
    if "self.__ids.transport_sequence_number = ext.id" not in inspect.getsource(
        aiortc.rtp.HeaderExtensionsMap.configure
    ):
        found.append("HeaderExtensionsMap.configure no longer learns the transport-cc id")
    with unconnected() as pc:
        transceiver = pc.addTransceiver("audio")
        if not isinstance(
            getattr(transceiver.receiver.transport, "_rtp_header_extensions_map", None),
            aiortc.rtp.HeaderExtensionsMap,
        ):
            found.append("RTCDtlsTransport instances have no _rtp_header_extensions_map")
        if not hasattr(transceiver.receiver, ESTIMATOR_ATTR):
            found.append(f"RTCRtpReceiver instances have no {ESTIMATOR_ATTR}")
        for attr in ("_codecs", "_headerExtensions", "_preferred_codecs"):
            if not isinstance(getattr(transceiver, attr, None), list):
                found.append(f"RTCRtpTransceiver instances have no {attr} list")
        if not isinstance(getattr(transceiver.sender, "_stream_id", None), str):
            found.append("RTCRtpSender instances have no _stream_id")
    return found
