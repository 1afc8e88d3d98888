"""A subscriber's copy of a publication, sent as RTP packets by the SFU itself.

aiortc's `RTCRtpSender` packetizes and sends every frame for every subscriber, with a
few coroutines and an `RtpPacket` object per packet: that was about 60% of the SFU's
time. Here a publication packetizes each frame once (`Packetized`, shared by every
subscriber), and each subscriber's `RtpOutput` only decides its own 12-byte header
(payload type, sequence number, timestamp, SSRC) and header extensions (its own
`mid`, abs-send-time, and for audio the publisher's RFC 6464 level, which subscribers
use to show who speaks). What changes per frame (sequence number, timestamp origin,
counts, resend budget, the wire last used) lives in its C `Stream`
(media/_rtp_send.c), whose one call per frame (`Stream.send`) builds the header and
extensions, checks that the transport still sends where it did, writes the packets in
front of the shared payloads, keeps them for NACKs, protects and sends them (a run of
equal-size packets in one system call where UDP GSO allows), and counts them for
aiortc's sender reports. A publication sends each frame to all its steady subscribers'
streams in one call (`_rtp_send.fan_out`, forwarding.py); `send` is the same work for
one subscriber, and makes a new wire when the last is no longer current.

The `RTCRtpSender` stays: its SSRC is the one in the SDP, it sends the RTCP sender
reports (from the counters kept here), and the subscriber's NACKs reach `retransmit`
(from the last `HISTORY` packets, as RTX when negotiated) and its PLIs the publisher.

There is no queue: a frame is sent at once, or dropped when the transport cannot take
it (`Delivery.STALLED`: the socket's backlog is full; `Delivery.DOWN`: not connected).

`pad` sends padding-only packets on the RTX stream while the layer choice probes the
subscriber's link (simulcast_choice.py): they carry abs-send-time like media, so the
browser's receive-side estimator counts them, and nothing else (as libwebrtc pads).
"""

from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass, field

from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from prometheus_client import Counter

from server.media import _rtp_send
from server.media.aiortc_internals import RtpLink
from server.media.resend_room import ResendRoom

HISTORY = 512  # packets kept per subscriber for NACKs (about 10 s of video at 500 kbit/s)
# A subscriber's NACKs cannot make it an amplifier: each packet sent adds one resend to
# a budget (at most RESEND_BUDGET kept), so resends never outnumber the stream itself
# (libwebrtc's sender caps its retransmission rate at its send rate the same way), and
# one packet is resent at most once per RESEND_GAP (the same number NACKed again in one
# burst, or by a client that re-NACKs faster than any round trip). Within that, resends
# fit in what the subscriber's estimate leaves after its media (resend_room.py).
RESEND_BUDGET = HISTORY // 2
RESEND_GAP = 0.01  # seconds
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
# The longest payload forwarded (Chrome's are under 1,200 bytes, Opus's at most 1,275):
# with the RTP header, the longest extension block and SRTP's tag, a packet stays within
# one Ethernet frame (1,472 bytes of UDP payload) and pylibsrtp's 1,500-byte buffer, which
# an aiortc subscriber unprotects into (the C send path's own slot is larger).
MAX_PAYLOAD = 1400
PADDING = 255  # bytes of padding per packet: the most RTP's one-byte count can say
PADDING_CATCH_UP = 0.1  # seconds of padding owed at most (after a gap between frames)


def header_size(packet: bytes) -> int:
    """The length of an RTP packet's header as `RtpOutput` writes it (no CSRCs; one
    header extension block when the X bit is set)."""
    if not packet[0] & 0x10:
        return 12
    return 16 + 4 * int.from_bytes(packet[14:16], "big")


def ntp_now() -> int:
    """The wall clock as a 64-bit NTP timestamp (what RTCP and abs-send-time carry)."""
    return int((time.time() + NTP_EPOCH_OFFSET) * (1 << 32))


def abs_send_time(ntp: int) -> bytes:
    """abs-send-time's 24-bit value (6.18 fixed point seconds) for an NTP timestamp."""
    return ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")


@dataclass(slots=True)
class Packetized:
    """One frame of a publication, split into RTP payloads once for every subscriber."""

    payloads: list[bytes]  # never empty
    timestamp: int  # in the codec's clock, continuous across the publisher's reconnects
    ntp: int  # when it is sent
    audio_level: int | None = None  # the publisher's RFC 6464 byte, for audio
    octets: int = field(init=False)  # the payloads' bytes, counted once for everyone
    abs_send_time: bytes = field(init=False)  # its 24-bit value, made once for everyone

    def __post_init__(self) -> None:
        self.octets = sum(map(len, self.payloads))
        self.abs_send_time = abs_send_time(self.ntp)


def forwardable(payloads: list[bytes]) -> bool:
    """Whether every payload is short enough to forward (MAX_PAYLOAD)."""
    return all(len(payload) <= MAX_PAYLOAD for payload in payloads)


class Delivery(enum.Enum):
    SENT = "sent"
    STALLED = "stalled"  # the subscriber's socket has too much queued: frame dropped
    DOWN = "down"  # the transport is not connected (yet, or any more): frame dropped


class RtpOutput:
    """Sends one publication's frames to one subscriber as that subscriber's RTP stream."""

    def __init__(
        self,
        link: RtpLink,
        codecs: list[RTCRtpCodecParameters],
        extensions: list[RTCRtpHeaderExtensionParameters],
        mid: str | None,
        retransmissions: Counter,
    ) -> None:
        self._link = link
        self._retransmissions = retransmissions
        codec = codecs[0]
        self._payload_type: int = codec.payloadType or 0
        self._rtx_payload_type = next(
            (
                c.payloadType
                for c in codecs
                if c.name.lower() == "rtx"
                and str(c.parameters.get("apt")) == str(codec.payloadType)
            ),
            None,
        )
        ids = {e.uri: e.id for e in extensions if 1 <= e.id <= 14}  # one-byte form only
        self._mid_element = b""
        if mid and MID_URI in ids and len(mid.encode()) <= 16:
            value = mid.encode()
            self._mid_element = bytes([(ids[MID_URI] << 4) | (len(value) - 1)]) + value
        self._abs_send_time = (
            bytes([(ids[ABS_SEND_TIME_URI] << 4) | 2]) if (ABS_SEND_TIME_URI in ids) else None
        )
        self._audio_level_id = ids.get(AUDIO_LEVEL_URI)
        self._rtx_seq = random.randrange(1 << 15)
        self._clock_rate = codec.clockRate
        self._history: list[bytes | None] = [None] * HISTORY  # the packets, unprotected
        self._resent_at = [-RESEND_GAP] * HISTORY  # monotonic time of each slot's last resend
        self._resend_floor = 0  # packets sent before the last layer switch are not resent
        # The extension block's fixed parts without a level (padding's, and the stream's).
        self._block = self._block_parts(leveled=False)
        # What changes per frame (sequence number, timestamps, counts, the resend budget,
        # the wire) is kept in C, where a frame goes out (and to a publication's steady
        # subscribers all at once: `fan_out`). Sequence numbers start below 2^15 so a long
        # call does not wrap early (as aiortc and Chromium do).
        self.stream = _rtp_send.Stream(
            self._history,
            link.ssrc,
            self._payload_type,
            random.randrange(1 << 15),
            random.getrandbits(32),
            self._block,
            # the block's parts around what changes per frame, with the audio level
            self._block_parts(leveled=self._audio_level_id is not None),
            self._audio_level_id or 0,
            RESEND_BUDGET,
        )
        self.retransmitted = 0
        self.resends_refused = 0  # NACKed packets not resent: over budget or just resent
        self.padding_packets = 0
        self._padding_owed = 0.0  # bytes
        self._padded_at: float | None = None
        link.on_retransmit_request(self.retransmit)

    @property
    def packets(self) -> int:
        return self.stream.packets

    @property
    def frames(self) -> int:
        """Frames sent (by `send` or a publication's `fan_out`)."""
        return self.stream.frames

    @property
    def room(self) -> ResendRoom | None:
        """Shared by the subscriber's outputs: what its estimate leaves for resends (set
        by the SFU once it has a REMB; every byte sent here is counted in it)."""
        room = self.stream.room
        return room if isinstance(room, ResendRoom) else None

    @room.setter
    def room(self, room: ResendRoom | None) -> None:
        self.stream.room = room

    def send(self, frame: Packetized) -> Delivery:
        """One frame: written, kept, protected and sent in one C call (`Stream.send`) on
        the wire it last used, or on a new one if that is no longer where the transport
        sends."""
        if self.stream.send(frame):
            return Delivery.SENT
        wire = self._link.wire()
        if wire is None:
            return Delivery.STALLED if self._link.connected else Delivery.DOWN
        self.stream.wire = wire
        if self.stream.send(frame):
            return Delivery.SENT
        return Delivery.STALLED  # cannot happen: wire() returns a current one, nothing awaited

    def continue_at(self, frame: Packetized) -> None:
        """`frame` is the first of another source (a simulcast layer switch) whose RTP
        clock has another origin: this stream's timestamps go on from the last frame
        sent, advanced by the wall time between the two (sequence numbers never jump)."""
        # What was sent before this keyframe is of the old layer: the subscriber decodes
        # from the keyframe on and never needs it again. Resent into a congested link
        # (the usual reason for a step down) it only kept the link full: up to the whole
        # resend budget, ~7 s of a 300 kbit/s link, before the new layer got through.
        self.forget_sent()
        last = self.stream.last
        if last is None:
            return
        timestamp, ntp = last
        ticks = max(1, ((frame.ntp - ntp) * self._clock_rate) >> 32)
        self.stream.origin = (timestamp + ticks - frame.timestamp) & 0xFFFFFFFF

    def forget_sent(self) -> None:
        """Nothing sent so far is resent: the subscriber decodes from a keyframe still
        to come (a layer switch, a paused stream)."""
        self._resend_floor = self.packets

    async def retransmit(self, seq: int) -> None:
        """Send a packet the subscriber reported lost again, if it is still kept (and
        within the resend budget: see RESEND_BUDGET)."""
        slot = seq % HISTORY
        packet = self._history[slot]
        wire = self._link.wire()
        if packet is None or wire is None:
            return
        if int.from_bytes(packet[2:4], "big") != seq:
            return  # overwritten by a newer packet
        if self.packets - ((self.stream.seq - seq) & 0xFFFF) < self._resend_floor:
            self.resends_refused += 1  # of the layer before the last switch: useless
            return
        now = time.monotonic()
        if self.stream.budget < 1 or now - self._resent_at[slot] < RESEND_GAP:
            self.resends_refused += 1
            return
        rtx = 2 if self._rtx_payload_type is not None else 0  # RTX's original sequence number
        if self.room is not None and not self.room.take(len(packet) + rtx, now):
            self.resends_refused += 1  # the link is full: a resend would push out media
            return
        self.stream.budget -= 1
        self._resent_at[slot] = now
        size = header_size(packet)
        header, payload = packet[:size], packet[size:]
        if self._rtx_payload_type is not None:  # RFC 4588: own SSRC and sequence numbers
            header = (
                bytes((header[0], (header[1] & 0x80) | self._rtx_payload_type))
                + self._rtx_seq.to_bytes(2, "big")
                + header[4:8]
                + self._link.rtx_ssrc.to_bytes(4, "big")
                + header[12:]
            )
            payload = seq.to_bytes(2, "big") + payload
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        wire.packets([header + payload])
        self.retransmitted += 1
        self._retransmissions.inc()

    def pad(self, bitrate: float, now: float) -> None:
        """Padding at `bitrate` (bit/s) since the last call, as padding-only packets on
        the RTX stream; nothing without RTX, before the first frame, or at bitrate 0."""
        wire = self._link.wire()
        last = self.stream.last
        if not bitrate or self._rtx_payload_type is None or last is None or wire is None:
            self._padded_at, self._padding_owed = None, 0.0
            return
        since = now - self._padded_at if self._padded_at is not None else 1 / 30
        self._padded_at = now
        extensions = self._extensions(abs_send_time(ntp_now()))
        front = bytes((0xB0 if extensions else 0xA0, self._rtx_payload_type))  # P bit set
        tail = last[0].to_bytes(4, "big") + self._link.rtx_ssrc.to_bytes(4, "big")
        tail += extensions + bytes(PADDING - 1) + bytes((PADDING,))
        size = len(front) + 2 + len(tail)
        self._padding_owed += bitrate / 8 * min(since, PADDING_CATCH_UP)
        count = int(self._padding_owed // size)
        if not count:
            return
        self._padding_owed -= count * size
        packets = []
        for _ in range(count):
            packets.append(front + self._rtx_seq.to_bytes(2, "big") + tail)
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        wire.packets(packets)
        self.padding_packets += count
        if self.room is not None:
            self.room.sent += count * size

    def _block_parts(self, leveled: bool) -> tuple[bytes, bool, bytes]:
        """The one-byte header extension block (RFC 8285) around what changes per frame:
        its start (header, `mid`, abs-send-time's element header), whether
        abs-send-time's 3 bytes follow, and what ends it after them (and the 2-byte
        audio level element when `leveled`): its padding."""
        elements = len(self._mid_element)
        if self._abs_send_time is not None:
            elements += 4
        if leveled:
            elements += 2
        if not elements:
            return b"", False, b""
        padding = -elements % 4
        head = b"\xbe\xde" + ((elements + padding) // 4).to_bytes(2, "big") + self._mid_element
        if self._abs_send_time is not None:
            head += self._abs_send_time
        return head, self._abs_send_time is not None, bytes(padding)

    def _extensions(self, send_time: bytes) -> bytes:
        """The header extension block (no audio level) for packets sent at `send_time`
        (abs-send-time, 3 bytes): what padding carries. (A frame's is made in C.)"""
        head, timed, padding = self._block
        if not head:
            return b""
        return head + send_time + padding if timed else head + padding
