"""Negotiation: the codecs and extensions kept across offers, the stream id, and the
forward-only codecs (internals 5, 6, 16).

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
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from server.media import forward_only
from server.media.aiortc_internals.base import (
    unconnected,
)


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
    with unconnected() as pc:
        transceiver = pc.addTransceiver("audio")
        for attr in ("_codecs", "_headerExtensions", "_preferred_codecs"):
            if not isinstance(getattr(transceiver, attr, None), list):
                found.append(f"RTCRtpTransceiver instances have no {attr} list")
        if not isinstance(getattr(transceiver.sender, "_stream_id", None), str):
            found.append("RTCRtpSender instances have no _stream_id")
    return found
