"""One phone call: its dialog, its state, and its media loop.

The media loop sends one G.711 packet per packet time (the PIN prompt while the
caller keys the PIN, the room mix once they are in) and the receive side decodes
the caller's packets toward the room or reads their DTMF.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from server.phone import g711, sip
from server.phone.bridge import PhoneTrack, RoomMix
from server.phone.dtmf import DtmfReceiver
from server.phone.inband import InbandDtmf
from server.phone.pins import PinMatch
from server.phone.prompt import PinEntry, PromptPlayer
from server.phone.rtp import RtpEndpoint, RtpPacket, RtpStats, SequenceTracker
from server.phone.sdp import Answer
from server.phone.sip import SipMessage
from server.phone.srtp import SdesKeys
from server.rooms.model import MediaMode

log = logging.getLogger("pairwise.phone.call")

MAX_LAG_SECONDS = 0.2  # a stalled loop resynchronises instead of sending a burst


class CallState(StrEnum):
    RINGING = "ringing"  # INVITE received, 180 sent
    ANSWERED = "answered"  # 200 sent, waiting for ACK
    CONFIRMED = "confirmed"  # ACK received: media flows
    ENDED = "ended"


@dataclass
class Dialog:
    """What a UAS needs to send in-dialog requests (BYE) and match incoming ones."""

    call_id: str
    local_tag: str
    remote_from: str  # the caller's From, which becomes our To
    local_to: str  # the caller's To with our tag, which becomes our From
    remote_target: str  # the caller's Contact URI
    peer: tuple[str, int]  # where the signalling came from (the trunk or PBX)
    remote_tag: str = ""  # the caller's From tag
    invite_cseq: int = 0  # the INVITE's CSeq number (its ACK carries the same)
    local_cseq: int = 1

    def matches(self, request: SipMessage) -> bool:
        """Whether an in-dialog request belongs to this dialog: Call-ID and both tags."""
        return (
            request.call_id == self.call_id
            and sip.header_param(request.get("To"), "tag") == self.local_tag
            and (sip.header_param(request.get("From"), "tag") or "") == self.remote_tag
        )


@dataclass
class CallerInRoom:
    """Who the caller is in the room, once their PIN matched."""

    match: PinMatch
    identity: str
    name: str
    role: str
    joined_by_us: bool  # False: they were already there (browser) and switched to phone
    previous_mode: MediaMode | None = None


@dataclass
class Call:
    dialog: Dialog
    invite: SipMessage
    answer: Answer
    endpoint: RtpEndpoint
    stats: RtpStats
    caller: str  # masked caller number for logs and names
    display_name: str = ""  # from the caller's From header, if they sent one
    state: CallState = CallState.RINGING
    started: float = field(default_factory=time.monotonic)
    answered_at: float | None = None
    confirmed_at: float | None = None
    room: CallerInRoom | None = None
    phone_track: PhoneTrack | None = None
    mix: RoomMix | None = None
    pin_entry: PinEntry = field(default_factory=PinEntry)
    prompt: PromptPlayer = field(default_factory=PromptPlayer)
    prompting: bool = False
    muted: bool = False  # the caller pressed *6: their audio does not reach the room
    last_key: str = ""  # the key before, in the room (for *6)
    hang_up_after_prompt: bool = False
    # Our ACK to a dial-out's 2xx: sent again for each resent 2xx (RFC 3261 §13.2.2.4), as
    # the trunk resends its 2xx until an ACK reaches it. None for calls we answered.
    ack: bytes | None = None
    on_digits: Callable[[Call, str], None] | None = None
    # Keys that came before `on_digits` was set: the ACK and the first INFO can arrive in
    # one TCP read, before the handler's call_confirmed has run.
    early_keys: str = ""
    on_media_timeout: Callable[[Call], None] | None = None
    on_prompt_finished: Callable[[Call], None] | None = None
    media_timeout: float = 60.0
    end_reason: str = ""
    final_response: bytes = b""  # the last final response to the INVITE, for retransmits
    _dtmf: DtmfReceiver = field(default_factory=DtmfReceiver)
    _inband: InbandDtmf = field(default_factory=InbandDtmf)
    _sequence: SequenceTracker = field(default_factory=SequenceTracker)
    _ssrc: int | None = None
    _media_task: asyncio.Task[None] | None = None
    _last_packet: float = field(default_factory=time.monotonic)

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    @property
    def name(self) -> str:
        """What the room calls a caller admitted by the room PIN."""
        if self.display_name:
            return self.display_name
        return "Phone caller" if self.caller == "anonymous" else f"Phone {self.caller}"

    @property
    def since(self) -> float:
        """When the call was answered (its ACK), as wall-clock seconds."""
        return time.time() - (time.monotonic() - (self.confirmed_at or self.started))

    @property
    def source(self) -> str:
        """The address the call's signalling came from (what guessing is counted by)."""
        return self.dialog.peer[0]

    @property
    def local_rtp_port(self) -> int:
        return self.endpoint.local_port

    def retransmitted_by(self, request: SipMessage, addr: tuple[str, int]) -> bool:
        """Whether an INVITE without a To tag is this call's INVITE sent again: the same
        transaction (Via branch, From tag, CSeq) from the same source address and port."""
        return (
            request.branch == self.invite.branch
            and (sip.header_param(request.get("From"), "tag") or "") == self.dialog.remote_tag
            and request.cseq == self.invite.cseq
            and addr == self.dialog.peer
        )

    def key(self, digits: str) -> None:
        """Key presses from the caller (from RTP events, SIP INFO or in-band tones)."""
        if digits and self.on_digits is not None:
            self.on_digits(self, digits)
        elif digits:
            self.early_keys += digits

    def receive(self, packet: RtpPacket) -> None:
        """A packet from the caller (the RTP endpoint's callback)."""
        self._last_packet = time.monotonic()
        if packet.ssrc != self._ssrc:  # a new source (RFC 3550), say after a media move
            self._ssrc, self._sequence = packet.ssrc, SequenceTracker()
        if not self._sequence.accept(packet.sequence, self.stats):
            return
        if packet.payload_type == self.answer.dtmf_payload_type:
            self.stats.dtmf_packets_received += 1
            self.key(self._dtmf.feed(packet.timestamp, packet.payload))
        elif packet.payload_type == self.answer.payload_type:
            self.stats.audio_frames_received += 1
            if self.room is None and self.answer.dtmf_payload_type is None:
                # Waiting for a PIN from a caller whose offer had no key events: its keys
                # can only be tones in the audio.
                self.key(self._inband.feed(g711.decode(self.answer.codec, packet.payload)))
            elif self.phone_track is not None and not self.prompting and not self.muted:
                self.phone_track.push(g711.decode(self.answer.codec, packet.payload))

    def move_media(self, address: str, port: int) -> None:
        """A re-INVITE moved the caller's media (a new c=/m= address or port)."""
        self.answer = dataclasses.replace(self.answer, remote_address=address, remote_port=port)
        self.endpoint.move(address, port)

    def rekey(self, keys: SdesKeys) -> None:
        """A re-INVITE's SDES keys (the caller's new key; ours kept)."""
        self.answer = dataclasses.replace(self.answer, srtp=keys)
        if self.endpoint.srtp is not None:
            self.endpoint.srtp.rekey(keys)

    def set_direction(self, direction: str) -> None:
        """Hold (the caller sends nothing: no media timeout meanwhile) or un-hold (the
        timeout counts again from now)."""
        was_held = self.answer.held
        self.answer = dataclasses.replace(self.answer, direction=direction)
        if was_held and not self.answer.held:
            self._last_packet = time.monotonic()

    def play(self, samples: np.ndarray, *, loop: bool = False, then_hang_up: bool = False) -> None:
        self.prompting = True
        self.hang_up_after_prompt = then_hang_up
        self.prompt.play(samples, loop=loop)

    def start_media(self) -> None:
        if self._media_task is None:
            self._media_task = asyncio.create_task(
                self._send_loop(), name=f"phone-media-{self.call_id}"
            )

    async def stop_media(self) -> None:
        self.state = CallState.ENDED
        task, self._media_task = self._media_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.endpoint.close()

    def _next_samples(self, count: int, silence: np.ndarray) -> np.ndarray:
        """What the caller hears next: the prompt while one plays, else the room."""
        if self.prompting:
            if self.mix is not None:
                # The room goes on under the prompt: drain it, or it would queue up in
                # the mix and stay as delay for the rest of the call.
                self.mix.read(count)
            samples = self.prompt.read(count)
            if self.prompt.finished:
                self.prompting = False
                if self.on_prompt_finished is not None:
                    self.on_prompt_finished(self)
            return samples
        return self.mix.read(count) if self.mix is not None else silence

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        count = self.answer.samples_per_packet
        period = self.answer.ptime_ms / 1000
        silence = np.zeros(count, dtype=np.int16)
        sequence = int.from_bytes(self.endpoint.ssrc.to_bytes(4, "big")[:2], "big")
        timestamp = self.endpoint.ssrc
        first = True
        due = loop.time()
        while self.state != CallState.ENDED:
            if self.endpoint.latched and not self.answer.we_send:
                pass  # on hold: the caller asked for no media
            elif self.endpoint.latched:
                self.endpoint.send(
                    RtpPacket(
                        self.answer.payload_type,
                        sequence,
                        timestamp,
                        self.endpoint.ssrc,
                        g711.encode(self.answer.codec, self._next_samples(count, silence)),
                        marker=first,
                    )
                )
                first = False
                sequence, timestamp = sequence + 1, timestamp + count
            else:
                # Nowhere to send before the caller's first packet (rtp.py); the prompt
                # waits too, so it is heard from its start, except a goodbye: nobody
                # can hear it, so the call ends now.
                self.stats.packets_withheld += 1
                if self.prompting and self.hang_up_after_prompt:
                    self.prompting = False
                    if self.on_prompt_finished is not None:
                        self.on_prompt_finished(self)
            if (
                not self.answer.held
                and time.monotonic() - self._last_packet > self.media_timeout
                and self.on_media_timeout is not None
            ):
                self.on_media_timeout(self)
                return
            due += period
            if due - loop.time() < -MAX_LAG_SECONDS:
                due = loop.time()
            await asyncio.sleep(max(0.0, due - loop.time()))
