"""Media sections the SFU refuses one by one (port 0), instead of refusing the offer.

aiortc cannot reject a single m-line: an audio or video section with no codec it
supports (a browser offering only H265, or only VP9 or AV1 while someone in the room
cannot decode it: forward_only.py) makes
`setRemoteDescription` fail with "Failed to set remote video description send
parameters", and the whole offer, the audio with it, was refused. A data channel
(`m=application`) was answered and opened, but the SFU reads nothing from it.

So those sections never reach aiortc. `Refusals.take(offer)` removes them from the
client's offer (and from its BUNDLE group); the SFU's answer and each of its later
offers get them back at the same index as rejected sections (port 0, `a=inactive`, out
of the BUNDLE group, as JSEP (RFC 8829) has rejected m-sections), and `strip` takes them out of the client's
answers before aiortc reads them. aiortc numbers only the sections it knows; every
section it adds later comes after the refused ones (which are all in the first
offer), so splicing by index keeps both sides' m-line order.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from aiortc import RTCRtpSender

from server.media.forward_only import ALL as ALL_FORWARD_ONLY

# Not media codecs: they only repair or protect a media codec's packets.
_HELPERS = {"rtx", "red", "ulpfec", "flexfec-03"}

NO_CODEC = "no_codec"  # no audio/video codec the SFU has (e.g. H265-only video)
# VP9 or AV1 only, and someone in the room cannot decode it (forward_only.py)
NOT_SHARED = "codec_not_shared"
NO_DATA_CHANNEL = "data_channel"  # data channels are not carried: use Socket.IO


@dataclass
class Refused:
    """One refused section of the client's first offer."""

    index: int
    kind: str
    mid: str
    reason: str
    protocol: str
    fmt: str

    def public(self) -> dict[str, str]:
        return {"mid": self.mid, "kind": self.kind, "reason": self.reason}

    def rejected(self) -> list[str]:
        """The section as it stands in the SFU's answers and offers."""
        return [
            f"m={self.kind} 0 {self.protocol} {self.fmt}",
            "c=IN IP4 0.0.0.0",
            f"a=mid:{self.mid}",
            "a=inactive",
        ]


def _split(sdp: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    session: list[str] = []
    sections: list[list[str]] = []
    for line in lines:
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            session.append(line)
    return session, sections


def _join(session: list[str], sections: list[list[str]]) -> str:
    return "\r\n".join([*session, *(line for section in sections for line in section)]) + "\r\n"


def _mid(section: list[str]) -> str:
    return next((line[6:] for line in section if line.startswith("a=mid:")), "")


def _without_mids(session: list[str], mids: set[str]) -> list[str]:
    out = []
    for line in session:
        if line.startswith("a=group:BUNDLE"):
            kept = [mid for mid in line.split()[1:] if mid not in mids]
            line = " ".join(["a=group:BUNDLE", *kept])
        out.append(line)
    return out


def refusal(section: list[str], forward_only: Collection[str] = ()) -> str | None:
    """Why the SFU cannot take this section, or None if aiortc can (or should judge).
    `forward_only`: the forward-only codecs (mime types) it may take now."""
    parts = section[0][2:].split()
    if len(parts) < 4:
        return None  # a malformed m-line: aiortc refuses the offer (invalid_sdp)
    kind = parts[0]
    if kind == "application":
        return NO_DATA_CHANNEL
    if kind not in ("audio", "video") or parts[1] == "0":
        return None  # unknown kinds and sections the client rejected: aiortc's business
    supported = {
        c.mimeType.lower()
        for c in RTCRtpSender.getCapabilities(kind).codecs
        if c.mimeType.split("/")[1].lower() not in _HELPERS
    } | set(forward_only)
    offered = {
        f"{kind}/" + line.split()[1].split("/")[0].lower()
        for line in section
        if line.startswith("a=rtpmap:") and len(line.split()) > 1
    }
    if offered & supported:
        return None
    return NOT_SHARED if offered & ALL_FORWARD_ONLY else NO_CODEC


@dataclass
class Refusals:
    """The sections refused in one PeerConnection's first offer."""

    sections: list[Refused] = field(default_factory=list)

    def take(self, offer: str, forward_only: Collection[str] = ()) -> str:
        """The client's offer without the sections the SFU refuses (remembered here)."""
        session, sections = _split(offer)
        kept = []
        for index, section in enumerate(sections):
            reason = refusal(section, forward_only)
            if reason is None:
                kept.append(section)
                continue
            parts = section[0].split()
            self.sections.append(
                Refused(index, parts[0][2:], _mid(section), reason, parts[2], " ".join(parts[3:]))
            )
        if not self.sections:
            return offer
        return _join(_without_mids(session, {r.mid for r in self.sections}), kept)

    def restore(self, sdp: str) -> str:
        """The SFU's answer or offer with the refused sections back in place, rejected."""
        if not self.sections:
            return sdp
        session, sections = _split(sdp)
        for refused in self.sections:  # in index order
            sections.insert(refused.index, refused.rejected())
        return _join(session, sections)

    def strip(self, answer: str) -> str:
        """The client's answer without its (rejected) replies to the refused sections."""
        if not self.sections:
            return answer
        indexes = {r.index for r in self.sections}
        session, sections = _split(answer)
        kept = [s for i, s in enumerate(sections) if i not in indexes]
        return _join(_without_mids(session, {r.mid for r in self.sections}), kept)
