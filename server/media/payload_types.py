"""Stable payload types and header-extension ids across the SFU's re-offers.

aiortc builds every offer from its own codec table: Opus is 96 and VP8 97 in each offer,
whatever the first offer/answer agreed (a browser's Opus is 111 and its VP8 96). A
re-offer must keep each negotiated m-line's payload types and extension ids (RFC 3264
§8.3.2), and inside a BUNDLE one number may mean only one codec (RFC 8843 §7.5):
Chrome refuses a re-offer that renumbers, and a publisher that did follow it would send
payload types the SFU's receiver (its map is fixed when it starts) drops.

Extension ids matter even more: aiortc keeps one id → extension map per transport and
every sender that starts merges its ids into it. A forwarded track numbered aiortc's
way (abs-send-time 3, audio-level 2) re-maps the ids the publisher's packets use, the
parser then fails with `struct.error` (not the `ValueError` aiortc catches) and the
DTLS transport's receive loop dies: the publisher's frames stop reaching the SFU a
moment after the first re-offer, and the health monitor steps them down 5 s later.

`Numbering` remembers every payload type and extension id seen on one connection and
rewrites aiortc's offer: an m-line already negotiated offers exactly what its last
answer agreed; a new m-line reuses the connection's numbers for codecs already seen and
takes unused numbers for the others. aiortc's sender and receiver take their numbers
from the answer, which repeats the offer's, so nothing else has to change.
"""

from __future__ import annotations

import copy

from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.sdp import MediaDescription, SessionDescription

DYNAMIC_PAYLOAD_TYPES = range(96, 128)
ONE_BYTE_EXTENSION_IDS = range(1, 15)

CodecKey = tuple[str, int, int, str]


def codec_key(codec: RTCRtpCodecParameters, apt_key: CodecKey | None = None) -> CodecKey:
    """What makes two codec descriptions the same configuration (for numbering)."""
    mime = codec.mimeType.lower()
    detail = ""
    if mime == "video/h264":
        params = codec.parameters
        profile = str(params.get("profile-level-id", "42e01f")).lower()
        detail = f"{profile};{params.get('packetization-mode', '0')}"
    elif mime.endswith("/rtx"):
        detail = repr(apt_key)
    return (mime, codec.clockRate, codec.channels or 1, detail)


class Numbering:
    """The payload types and extension ids of one PeerConnection, kept stable."""

    def __init__(self) -> None:
        self._pt_of: dict[CodecKey, int] = {}
        self._used_pts: set[int] = set()
        self._codec_of: dict[int, RTCRtpCodecParameters] = {}
        self._id_of: dict[str, int] = {}
        self._used_ids: set[int] = set()
        self._negotiated: dict[str, MediaDescription] = {}

    def learn(self, sdp: str, answer: bool = False) -> None:
        """Remember the numbers in an SDP exchanged on this connection; an answer also
        fixes what each of its m-lines negotiated."""
        for media in SessionDescription.parse(sdp).media:
            if media.kind not in ("audio", "video"):
                continue
            self._learn_media(media)
            if answer and media.rtp.muxId:
                self._negotiated[media.rtp.muxId] = media

    def stabilize(self, offer_sdp: str) -> str:
        """aiortc's offer, renumbered to this connection's payload types and ids."""
        description = SessionDescription.parse(offer_sdp)
        for media in description.media:
            if media.kind not in ("audio", "video"):
                continue
            agreed = self._negotiated.get(media.rtp.muxId or "")
            if agreed is not None:
                media.rtp.codecs = copy.deepcopy(agreed.rtp.codecs)
                media.rtp.headerExtensions = copy.deepcopy(agreed.rtp.headerExtensions)
            else:
                media.rtp.codecs = self._renumber_codecs(media.rtp.codecs)
                media.rtp.headerExtensions = [
                    RTCRtpHeaderExtensionParameters(id=self._extension_id(x.uri), uri=x.uri)
                    for x in media.rtp.headerExtensions
                ]
            media.fmt = [codec.payloadType for codec in media.rtp.codecs]
            self._learn_media(media)
        return str(description)

    def _learn_media(self, media: MediaDescription) -> None:
        by_pt = {_pt(codec): codec for codec in media.rtp.codecs}
        for codec in media.rtp.codecs:
            self._remember_codec(codec, self._apt_key(codec, by_pt))
        for extension in media.rtp.headerExtensions:
            self._id_of.setdefault(extension.uri, extension.id)
            self._used_ids.add(extension.id)

    def _apt_key(
        self, codec: RTCRtpCodecParameters, by_pt: dict[int, RTCRtpCodecParameters]
    ) -> CodecKey | None:
        if not codec.mimeType.lower().endswith("/rtx"):
            return None
        base = by_pt.get(_apt(codec))
        return codec_key(base) if base is not None else None

    def _remember_codec(self, codec: RTCRtpCodecParameters, apt_key: CodecKey | None) -> None:
        pt = _pt(codec)
        self._used_pts.add(pt)
        self._codec_of.setdefault(pt, codec)
        self._pt_of.setdefault(codec_key(codec, apt_key), pt)

    def _renumber_codecs(self, codecs: list[RTCRtpCodecParameters]) -> list[RTCRtpCodecParameters]:
        new_pt: dict[int, int] = {}
        out: list[RTCRtpCodecParameters] = []
        for codec in codecs:  # base codecs first, so each RTX can point at its new number
            if codec.mimeType.lower().endswith("/rtx"):
                continue
            key = codec_key(codec)
            pt = self._pt_of.get(key)
            renumbered = copy.deepcopy(codec)
            if pt is None:
                pt = self._free_pt() if codec.payloadType in DYNAMIC_PAYLOAD_TYPES else None
            if pt is not None:
                known = self._codec_of.get(pt)
                if known is not None and codec_key(known) == key:
                    renumbered.parameters = dict(known.parameters)  # the same fmtp everywhere
                renumbered.payloadType = pt
            new_pt[_pt(codec)] = _pt(renumbered)
            self._remember_codec(renumbered, None)
            out.append(renumbered)
        for codec in codecs:
            if not codec.mimeType.lower().endswith("/rtx") or _apt(codec) not in new_pt:
                continue
            base = next(c for c in out if c.payloadType == new_pt[_apt(codec)])
            apt_key = codec_key(base)
            renumbered = copy.deepcopy(codec)
            known_pt = self._pt_of.get(codec_key(codec, apt_key))
            renumbered.payloadType = known_pt if known_pt is not None else self._free_pt()
            renumbered.parameters = {**codec.parameters, "apt": base.payloadType}
            self._remember_codec(renumbered, apt_key)
            # Keep the RTX right after its codec, as aiortc lists them.
            out.insert(out.index(base) + 1, renumbered)
        return out

    def _free_pt(self) -> int:
        for pt in DYNAMIC_PAYLOAD_TYPES:
            if pt not in self._used_pts:
                self._used_pts.add(pt)
                return pt
        raise ValueError("no free dynamic payload type left on this connection")

    def _extension_id(self, uri: str) -> int:
        known = self._id_of.get(uri)
        if known is not None:
            return known
        for candidate in ONE_BYTE_EXTENSION_IDS:
            if candidate not in self._used_ids:
                self._used_ids.add(candidate)
                self._id_of[uri] = candidate
                return candidate
        raise ValueError("no free header extension id left on this connection")


def _pt(codec: RTCRtpCodecParameters) -> int:
    if codec.payloadType is None:  # every codec parsed from an m-line has one
        raise ValueError(f"{codec.mimeType} has no payload type")
    return codec.payloadType


def _apt(codec: RTCRtpCodecParameters) -> int:
    apt = codec.parameters.get("apt")
    return int(apt) if apt is not None else -1
