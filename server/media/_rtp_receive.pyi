"""Types of the C receive path (server/media/_rtp_receive.c)."""

from typing import Any

def unprotect_parse(session: int, unprotect: int, data: bytes, ids: Any) -> Any:
    """One SRTP packet unprotected (libsrtp's `srtp_unprotect` at address `unprotect` on
    the srtp_t at `session`) and parsed as aiortc's `RtpPacket.parse` with the header
    extension ids of `ids` would; None where either fails."""

def classes(packet: type, extensions: type) -> None:
    """The classes `unprotect_parse` makes: aiortc's RtpPacket and HeaderExtensions."""

def vp8_payload(payload: bytes) -> bytes:
    """A VP8 RTP payload without its payload descriptor, as aiortc's `vp8_depayload`;
    ValueError where the descriptor is cut short."""

CAPACITY: int  # a layer's jitter buffer, in packets
HISTORY: int  # aiortc's RTP_HISTORY_SIZE: losses further back are forgotten
MAX_MISORDER: int  # aiortc's: an older packet within this is late, beyond it a restart
STALL_S: float  # packets but no frame for this long: the layer skips its gap
QUIET_S: float  # a quiet layer hands on one frame this often (and every keyframe)

class LayerBuffer:
    """One simulcast layer's NACK tracking, jitter buffer, frame assembly and statistics
    (what aiortc's `NackGenerator`, a `PromptVideoBuffer`, `skip_gap_in` and
    `StreamStatistics` do)."""

    missing: list[int]  # every missing sequence number, ascending
    max_seq: int | None  # the NACK generator's newest sequence number
    origin: int | None  # the jitter buffer's first sequence number
    held: int  # packets in the jitter buffer
    # Nobody takes its frames now (set by the publication): a frame is handed on only if
    # it is a keyframe (VP8's rule), follows a gap, or comes `QUIET_S` after the last one
    # handed on; the others are counted and their count goes with the next one handed on.
    quiet: bool
    held_frames: int  # frames kept back since the last one handed on
    # Forwarding (a simulcast VP8 layer whose every taker is steady on it): each frame is
    # packetized here and sent to the streams given (`forward`), then handed on only as a
    # quiet layer's would be, or if a stream sent nothing.
    forwarding: bool
    # the last frame handed on, if sent from here: (Packetized, the positions of the
    # streams that sent nothing, the streams it went to)
    sent: tuple[Any, list[int], Any] | None
    fanned: int  # frames sent to a stream from here, until the publication takes the count
    # VP8: the next frame's (aiortc's Vp8Encoder's numbering, 0..32767); set when this
    # buffer takes over a stream another one sent (its numbering runs on)
    picture_id: int
    last_sent: int | None  # the timestamp (offset added) of the last frame sent from here
    # audio: (monotonic arrival time, RFC 6464 level) of each packet kept back before the
    # last one handed on, oldest first, the newest 64 (the speaker detector's input)
    held_levels: tuple[tuple[float, int], ...]
    # the statistics (aiortc's StreamStatistics attributes)
    base_seq: int | None
    stats_max_seq: int | None
    cycles: int
    packets_received: int
    jitter_q4: int
    last_arrival: int | None
    last_timestamp: int | None
    def __init__(self, now: float) -> None:
        """A layer that began at `now` (seconds, monotonic)."""

    def add(
        self, seq: int, timestamp: int, marker: bool, data: bytes, now: float
    ) -> (
        None
        | tuple[
            bool, list[int] | None, bytes | None, list[bytes] | None, int | None, bool, int, int
        ]
    ):
        """A packet of the layer (its depayloaded `data`) arrived at `now`: None when
        nothing follows, else (PLI wanted, the missing packets to NACK or None, the frame
        it completed or None, that frame's packet payloads, its RTP timestamp, whether it
        follows a skipped gap, and the frames and bytes `quiet` kept back before it)."""

    def count(self, seq: int, timestamp: int, arrival: int) -> None:
        """`StreamStatistics.add` for a packet of the layer (`arrival` in units of the
        clock rate, as aiortc's `int(time.time() * clockrate)`)."""

    def audio(self, seq: int, size: int, now: float) -> tuple[int, int] | None:
        """An audio stream's rule (receive.py's `AudioPassThrough`), for a packet of
        `size` payload bytes at `now`: None if `seq` is not newer than every packet
        before it (else it is the newest: `max_seq`) or the stream is `quiet` and the
        packet not due (counted, kept back); else the frames and bytes kept back before
        it."""

    def forward(self, *args: Any) -> None:
        """`forward(streams, send, frame_class, offset=0)`: from now on each frame
        (packetized here if VP8; an audio packet as it came, with its level) goes out as
        `send(streams, frame_class(payloads, timestamp + offset, ntp, level))` (`send`
        returns the indices of the streams that sent nothing); `forward(None)`: no
        more. Audio is sent from the C path only (`FastLayers`), not from `audio()`."""

    def take_held(self) -> tuple[int, int]:
        """The frames and bytes kept back since the last one handed on, for a publication
        done with this buffer: the next frame handed on does not carry them again."""

    def packetize(self, data: bytes) -> list[bytes]:
        """A VP8 frame's RTP payloads as aiortc's `Vp8Encoder.pack` makes them, with this
        layer's picture id (moved on)."""

    def take_statistics(
        self,
        base_seq: int | None,
        max_seq: int | None,
        cycles: int,
        received: int,
        jitter_q4: int,
        last_arrival: int | None,
        last_timestamp: int | None,
    ) -> None:
        """Count on from a `StreamStatistics`' state."""

class FastLayers:
    """One connection's routed simulcast layers and audio streams, each packet taken
    from the datagram to its frame in one call."""

    consumed: int  # packets taken the whole way
    routes: int  # layers and audio streams routed
    def route(
        self,
        ssrc: int,
        payload_type: int,
        layer: LayerBuffer,
        on_event: Any,
        receiver: Any,
        ssrc_table: dict[int, Any],
        clockrate: float,
        audio: bool = False,
    ) -> bool:
        """Take the VP8 packets of `ssrc` with `payload_type` while `ssrc_table` routes
        them to `receiver` and it is `_enabled`: their statistics, payload and layer in
        C, `on_event(ssrc, payload_type, pli, lost, frame, parts, timestamp, after_gap,
        held_frames, held_bytes)` called by the caller of `receive` when one has any.
        `audio`: each packet is a frame, the newest (`layer.audio`) going on as
        `on_event(ssrc, payload_type, payload, timestamp, level, held_frames, held_bytes)`
        (`level` the RFC 6464 byte or None); while `layer.quiet`, one every `QUIET_S`.
        False: no room (16)."""

    def feedback(self, sender: Any, log: Any) -> None:
        """Record the routed packets' transport-wide sequence numbers in `log` (a
        TransportFeedback) and call `sender.send(arrival_ns)` once `sender.due_ns` has
        come."""

    def receive(self, session: int, unprotect: int, data: bytes, ids: Any, arrival_ns: int) -> Any:
        """`unprotect_parse`, except that a routed layer's packet is taken the whole
        way: None (nothing more to do: taken, or dropped), an RtpPacket for the Python
        path, or a tuple (on_event, then its arguments) to call."""

class ArrivalClock:
    """Arrival times of the datagrams one aioice `Connection` delivers, in ns
    (aiortc_internals/arrival.py)."""

    stamped: int  # datagrams given the kernel's time
    def __init__(self, nominated: dict[int, Any], socket_of: Any) -> None:
        """`nominated`: the connection's `_nominated` (component → pair); `socket_of(pair)`:
        its socket's fd, or -1."""

    def now_ns(self, component: int) -> int:
        """The arrival time of the datagram being delivered for `component` now."""

class RtpDemux:
    """Stands in for one aioice `StunProtocol.datagram_received`: a datagram that is not
    RTP or RTCP (first byte outside 128..191) goes to `stun`; one DirectReceive would take
    as SRTP now is counted, stamped and received in C (`FastLayers`), then handed to
    `direct.event` or `direct.after_unprotect` if anything is left; anything else to
    `direct(data, component)`."""

    handed: int  # RTP and RTCP datagrams handed on
    def __init__(
        self,
        stun: Any,
        direct: Any,
        component: int,
        dtls: Any,
        connected: Any,
        fast: FastLayers,
        clock: ArrivalClock,
    ) -> None:
        """`stun`: aioice's own `datagram_received`; `direct`: the connection's
        DirectReceive; `connected`: aiortc's DTLS `State.CONNECTED`."""

    def __call__(self, data: bytes, addr: Any) -> None:
        """One datagram read from the protocol's socket (as `datagram_received`)."""
    def srtp(self, session: Any, address: int, unprotect: int) -> None:
        """The receiving SRTP session (compared by identity with the transport's
        `_rx_srtp`) and its srtp_t's address."""
