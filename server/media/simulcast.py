"""Simulcast in the SDP (RFC 8853 with RIDs, RFC 8851): what a publisher offers, what
the SFU answers, and which received SSRC is which layer.

A browser publishing simulcast offers one video m-line with `a=rid:<id> send` for each
encoding and `a=simulcast:send q;h;f`, and numbers the layers' packets with the
`rtp-stream-id` header extension (their retransmissions with
`repaired-rtp-stream-id`); it may also list their SSRCs (`a=ssrc`, and the legacy
`a=ssrc-group:SIM` without RIDs). aiortc knows none of this: it answered without the
RIDs, and Chrome then sent only its first (320x180) layer. `SimulcastOffer` reads the
offer; `annotate` writes `a=rid:<id> recv` and `a=simulcast:recv ...` into the SFU's
answer and into each of its later offers (a re-offer without them would end the
simulcast); `EXTENSIONS` are accepted on that m-line so the answer carries them and the
receiver parses them. `Layers` maps each received SSRC to its layer, learnt from the
header extensions (or from the SIM group's order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
EXTENSIONS = (RID_URI, REPAIRED_RID_URI)
MAX_LAYERS = 4
_RID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


@dataclass
class SimulcastSection:
    """One simulcast video m-line of a publisher's offer."""

    mid: str
    rids: list[str]  # in the offer's simulcast order (browsers: lowest first)
    ssrcs: list[int] = field(default_factory=list)  # a=ssrc-group:SIM, lowest first
    rtx: dict[int, int] = field(default_factory=dict)  # RTX SSRC → media SSRC (FID)
    extensions: dict[str, int] = field(default_factory=dict)  # URI → id in the offer

    @property
    def count(self) -> int:
        return len(self.rids) or len(self.ssrcs)


def _sections(sdp: str) -> list[list[str]]:
    sections: list[list[str]] = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if line.startswith("m="):
            sections.append([line])
        elif sections and line:
            sections[-1].append(line)
    return sections


def parse_offer(sdp: str) -> dict[str, SimulcastSection]:
    """mid → the simulcast video sections of a client's offer (at most `MAX_LAYERS`
    layers each; unknown, paused or repeated RIDs are left out)."""
    found: dict[str, SimulcastSection] = {}
    for section in _sections(sdp):
        if not section[0].startswith("m=video"):
            continue
        mid = next((line[6:] for line in section if line.startswith("a=mid:")), "")
        sent = {
            parts[0][6:]
            for line in section
            if line.startswith("a=rid:") and len(parts := line.split()) >= 2 and parts[1] == "send"
        }
        order: list[str] = []
        for line in section:
            if line.startswith("a=simulcast:"):
                parts = line[len("a=simulcast:") :].split()
                if len(parts) >= 2 and parts[0] == "send":
                    for alternatives in parts[1].split(";"):
                        rid = alternatives.split(",")[0]
                        paused, repeated = rid.startswith("~"), rid in order
                        if not paused and not repeated and rid in sent and _RID.match(rid):
                            order.append(rid)
        ssrcs: list[int] = []
        rtx: dict[int, int] = {}
        for line in section:
            if line.startswith("a=ssrc-group:SIM "):
                ssrcs = [int(x) for x in line.split()[1:] if x.isdigit()]
            elif line.startswith("a=ssrc-group:FID "):
                pair = [int(x) for x in line.split()[1:] if x.isdigit()]
                if len(pair) == 2:
                    rtx[pair[1]] = pair[0]
        extensions = {}
        for line in section:
            if line.startswith("a=extmap:"):
                head, _, uri = line.partition(" ")
                ident = head[len("a=extmap:") :].split("/")[0]
                if uri.split()[0] in EXTENSIONS and ident.isdigit():
                    extensions[uri.split()[0]] = int(ident)
        if len(order) >= 2 and RID_URI in extensions:
            found[mid] = SimulcastSection(mid, order[:MAX_LAYERS], [], rtx, extensions)
        elif len(ssrcs) >= 2:
            found[mid] = SimulcastSection(mid, [], ssrcs[:MAX_LAYERS], rtx, extensions)
    return found


def annotate(sdp: str, sections: dict[str, SimulcastSection]) -> str:
    """The SFU's answer or offer with each simulcast m-line saying it receives the
    publisher's layers (`a=rid:<id> recv`, `a=simulcast:recv ...`)."""
    if not any(s.rids for s in sections.values()):
        return sdp
    out: list[str] = []
    current: SimulcastSection | None = None

    def close() -> None:
        if current is not None and current.rids:
            out.extend(f"a=rid:{rid} recv" for rid in current.rids)
            out.append("a=simulcast:recv " + ";".join(current.rids))

    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    for line in lines:
        if line.startswith("m="):
            close()
            current = None
        elif line.startswith("a=mid:"):
            current = sections.get(line[6:])
        if line.startswith(("a=rid:", "a=simulcast:")):
            continue
        out.append(line)
    close()
    return "\r\n".join(out) + "\r\n"


class Layers:
    """Which received SSRC carries which layer of one simulcast m-line."""

    def __init__(self, section: SimulcastSection) -> None:
        self.section = section
        self._by_rid = {rid: i for i, rid in enumerate(section.rids)}
        self._index: dict[int, int] = {ssrc: i for i, ssrc in enumerate(section.ssrcs)}
        self._ssrc: dict[int, int] = {i: ssrc for i, ssrc in enumerate(section.ssrcs)}
        self.rtx: dict[int, int] = dict(section.rtx)  # RTX SSRC → media SSRC

    @property
    def count(self) -> int:
        return self.section.count

    def learn(self, ssrc: int, rid: str | None, repaired_rid: str | None) -> None:
        """A packet's SSRC and its RID (or, for a retransmission, its repaired RID)."""
        if rid is not None:
            index = self._by_rid.get(rid)
            if index is not None and ssrc not in self._index:
                old = self._ssrc.get(index)  # a layer has one SSRC: the newest replaces it
                if old is not None:
                    self._index.pop(old, None)
                    self.rtx = {r: m for r, m in self.rtx.items() if m != old}
                self._index[ssrc] = index
                self._ssrc[index] = ssrc
        elif repaired_rid is not None and ssrc not in self.rtx:
            index = self._by_rid.get(repaired_rid)
            media = self._ssrc.get(index) if index is not None else None
            if media is not None:  # and one RTX stream
                self.rtx = {r: m for r, m in self.rtx.items() if m != media}
                self.rtx[ssrc] = media

    def index_of(self, ssrc: int) -> int | None:
        return self._index.get(ssrc)

    def ssrc_of(self, index: int) -> int | None:
        return self._ssrc.get(index)

    def rid_of(self, index: int) -> str | None:
        rids = self.section.rids
        return rids[index] if index < len(rids) else None
