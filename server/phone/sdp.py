"""A small SIP offer/answer (RFC 3264) for one audio stream: G.711 plus RFC 4733 DTMF.

aiortc's SDP parser drops static payload types that come without `a=rtpmap` and
ignores `a=ptime`, both common from SIP trunks, so SIP gets its own few lines here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from server.phone.srtp import SUITE, SdesKeys, crypto_line, parse_crypto

# Our preference order among what the caller offers.
G711 = {0: "PCMU", 8: "PCMA"}
DEFAULT_PTIME_MS = 20
ALLOWED_PTIMES_MS = (10, 20, 30, 40, 60)
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# RFC 3264 §6.1: the answer's direction for each offered one (hold is sendonly/inactive).
ANSWER_DIRECTION = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}


class SdpError(ValueError):
    """The body is not a usable session description."""


class NoCommonCodec(SdpError):
    """The offer has audio but neither PCMU nor PCMA (answer 488)."""


class NoCommonSecurity(SdpError):
    """The offer's media transport or keys are none we can use (answer 488, never a
    silently unencrypted answer to an encrypted offer)."""


@dataclass
class Offer:
    address: str
    port: int
    payload_types: list[int]
    rtpmap: dict[int, str] = field(default_factory=dict)  # pt → "encoding/rate" lowercased
    ptime_ms: int | None = None
    direction: str = "sendrecv"  # the caller's: sendonly or inactive put the call on hold
    profile: str = "RTP/AVP"  # RTP/SAVP: encrypted (SRTP), keys in a=crypto lines
    crypto: list[str] = field(default_factory=list)  # the a=crypto values, in order
    rtcp_mux: bool = False  # a=rtcp-mux: RTCP arrives on the RTP port (RFC 5761)


@dataclass(frozen=True)
class Answer:
    """What both sides will use: the caller's address, our codec and its packet time."""

    remote_address: str
    remote_port: int
    payload_type: int
    codec: str  # PCMU | PCMA
    dtmf_payload_type: int | None
    ptime_ms: int
    direction: str = "sendrecv"  # ours, answering the offer's (ANSWER_DIRECTION)
    srtp: SdesKeys | None = None  # RTP/SAVP: the keys both ways (srtp.py)
    rtcp_mux: bool = False  # answered a=rtcp-mux (the caller offered it)

    @property
    def samples_per_packet(self) -> int:
        return 8 * self.ptime_ms

    @property
    def we_send(self) -> bool:
        return self.direction in ("sendrecv", "sendonly")

    @property
    def held(self) -> bool:
        """On hold, either way: phones on hold often send nothing, even when a=sendonly
        promises music, so no RTP is required meanwhile."""
        return self.direction != "sendrecv"


def parse_offer(body: bytes) -> Offer:
    """The first audio stream of an SDP body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8") from None
    session_address = ""
    session_direction = "sendrecv"
    offer: Offer | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "c":
            parts = value.split()
            if len(parts) != 3 or parts[1] != "IP4":
                raise SdpError("only IPv4 connection lines are supported")
            address = parts[2].split("/")[0]
            if offer is None:
                session_address = address
            elif not offer.address:
                offer.address = address
        elif kind == "m":
            if offer is not None:
                break  # one audio stream is all a phone call has
            parts = value.split()
            if len(parts) < 4 or parts[0] != "audio":
                continue
            try:
                port = int(parts[1].split("/")[0])
                pts = [int(pt) for pt in parts[3:]]
            except ValueError:
                raise SdpError("malformed m= line") from None
            if not 0 <= port <= 65535 or any(not 0 <= pt <= 127 for pt in pts):
                raise SdpError("port or payload type out of range")
            offer = Offer(
                address="",
                port=port,
                payload_types=pts,
                direction=session_direction,
                profile=parts[2],
            )
        elif kind == "a" and offer is None and value in DIRECTIONS:
            session_direction = value
        elif kind == "a" and offer is not None:
            _attribute(offer, value)
    if offer is None:
        raise SdpError("no audio stream offered")
    offer.address = offer.address or session_address
    if not offer.address:
        raise SdpError("no connection address")
    if offer.address == "0.0.0.0" and offer.direction == "sendrecv":
        offer.direction = "sendonly"  # RFC 2543 hold: "do not send to me"
    return offer


def _attribute(offer: Offer, value: str) -> None:
    name, _, rest = value.partition(":")
    if name in DIRECTIONS:
        offer.direction = name
        return
    if name == "crypto":
        offer.crypto.append(rest.strip())
        return
    if name == "rtcp-mux":
        offer.rtcp_mux = True
        return
    try:
        if name == "rtpmap":
            pt, _, encoding = rest.partition(" ")
            offer.rtpmap[int(pt)] = encoding.strip().lower()
        elif name == "ptime":
            offer.ptime_ms = int(float(rest))
    except ValueError:
        raise SdpError(f"malformed a={name}") from None


def negotiate(offer: Offer) -> Answer:
    """Pick PCMU or PCMA (by the caller's order) and telephone-event if offered; for
    RTP/SAVP the first usable `a=crypto` key."""
    srtp = offered_keys(offer)
    codec_pt: int | None = None
    dtmf_pt: int | None = None
    for pt in offer.payload_types:
        encoding = offer.rtpmap.get(pt)
        static = pt in G711 and (encoding is None or encoding.startswith(G711[pt].lower()))
        if codec_pt is None and (static or encoding in ("pcmu/8000", "pcma/8000")):
            codec_pt = pt
        if dtmf_pt is None and encoding is not None and encoding.startswith("telephone-event/8000"):
            dtmf_pt = pt
    if codec_pt is None:
        raise NoCommonCodec("no PCMU or PCMA in the offer")
    encoding = offer.rtpmap.get(codec_pt)
    codec = encoding.split("/")[0].upper() if encoding else G711[codec_pt]
    ptime = offer.ptime_ms if offer.ptime_ms in ALLOWED_PTIMES_MS else DEFAULT_PTIME_MS
    return Answer(
        offer.address,
        offer.port,
        codec_pt,
        codec,
        dtmf_pt,
        ptime,
        ANSWER_DIRECTION[offer.direction],
        srtp,
        offer.rtcp_mux,
    )


def offered_keys(offer: Offer) -> SdesKeys | None:
    """The SDES keys of an RTP/SAVP offer (None for plain RTP); `NoCommonSecurity` when
    it is encrypted in a way we cannot do."""
    if offer.profile == "RTP/SAVP":
        srtp = next((k for k in map(parse_crypto, offer.crypto) if k is not None), None)
        if srtp is None:
            raise NoCommonSecurity(f"RTP/SAVP needs an a=crypto {SUITE} key without MKI")
        return srtp
    if offer.profile not in ("RTP/AVP", "RTP/AVPF"):
        raise NoCommonSecurity(f"media transport {offer.profile} is not supported")
    return None


def _session_lines(local_address: str) -> list[str]:
    session = int(time.time())
    return [
        "v=0",
        f"o=pairwise {session} {session} IN IP4 {local_address}",
        "s=pairwise",
        f"c=IN IP4 {local_address}",
        "t=0 0",
    ]


def build_offer(
    local_address: str,
    local_port: int,
    crypto: tuple[int, bytes] | None = None,
    *,
    secure_profile: bool = False,
) -> bytes:
    """Our offer when we call out: PCMU, PCMA and telephone-event, 20 ms; with `crypto`
    (tag, our key) an `a=crypto` line, under `RTP/SAVP` when `secure_profile` (SRTP
    required: a trunk without it must refuse) or else `RTP/AVP` (best-effort SRTP, as
    Asterisk's optimistic encryption offers it: a trunk without SRTP ignores the key)."""
    profile = "RTP/SAVP" if secure_profile and crypto is not None else "RTP/AVP"
    lines = [
        *_session_lines(local_address),
        f"m=audio {local_port} {profile} 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        *([crypto_line(*crypto)] if crypto is not None else []),
        f"a=ptime:{DEFAULT_PTIME_MS}",
        "a=sendrecv",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def answered_keys(
    answer: Offer, tag: int, local: bytes | None, *, required: bool
) -> SdesKeys | None:
    """The SRTP keys of the trunk's answer to our offer (`tag`, our key `local`; None
    when we offered none): the answer's `a=crypto` under our tag gives its key. None
    for a plain answer, unless SRTP is `required` (`NoCommonSecurity`); an `RTP/SAVP`
    answer without a usable key under our tag is `NoCommonSecurity` too."""
    if local is None:
        if answer.profile == "RTP/SAVP":
            raise NoCommonSecurity("the trunk answered RTP/SAVP to a plain offer")
        return None
    chosen = next(
        (k for k in map(parse_crypto, answer.crypto) if k is not None and k.tag == tag), None
    )
    if answer.profile not in ("RTP/SAVP", "RTP/AVP", "RTP/AVPF"):
        raise NoCommonSecurity(f"media transport {answer.profile} is not supported")
    if chosen is None:
        if answer.profile == "RTP/SAVP":
            raise NoCommonSecurity(f"RTP/SAVP answered without an a=crypto:{tag} {SUITE} key")
        if required:
            raise NoCommonSecurity("the trunk answered plain RTP; SRTP is required")
        return None
    return SdesKeys(tag, chosen.remote, local)


def build_answer(answer: Answer, local_address: str, local_port: int) -> bytes:
    pts = [answer.payload_type] + (
        [answer.dtmf_payload_type] if answer.dtmf_payload_type is not None else []
    )
    lines = [
        *_session_lines(local_address),
        f"m=audio {local_port} {'RTP/SAVP' if answer.srtp else 'RTP/AVP'} "
        + " ".join(str(pt) for pt in pts),
        f"a=rtpmap:{answer.payload_type} {answer.codec}/8000",
    ]
    if answer.srtp is not None:
        lines.append(answer.srtp.answer_line)
    if answer.dtmf_payload_type is not None:
        lines += [
            f"a=rtpmap:{answer.dtmf_payload_type} telephone-event/8000",
            f"a=fmtp:{answer.dtmf_payload_type} 0-15",
        ]
    if answer.rtcp_mux:
        lines.append("a=rtcp-mux")
    lines += [f"a=ptime:{answer.ptime_ms}", f"a={answer.direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()
