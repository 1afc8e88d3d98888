"""Room events only the phone gateway produces (joins and leaves are the registry's).

A wrong PIN names no room: those events carry `room=""`, the caller's masked number,
the source address and the call id, so a log can still tell one failing caller from
another. A PIN refused although it names a room (a removed person's personal PIN)
carries that room, and the pair's session log records it.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.rooms.events import RoomEvent


@dataclass(frozen=True)
class PhonePinRejected(RoomEvent):
    """A caller's PIN was refused (keyed, in the Request-URI or in X-Room-Pin)."""

    call_id: str
    caller: str  # the caller's number with all but the last digits masked
    source: str  # the address the SIP request came from (the trunk, or the attacker)
    via: str  # dtmf | request_uri | header
    # wrong_pin | no_pin (nothing keyed in time) | source_locked (too many failures from
    # the address: not checked) | removed (the person was removed from the room)
    reason: str
    attempt: int
    final: bool  # the last try: the gateway hangs up


@dataclass(frozen=True)
class PhoneCallEnded(RoomEvent):
    """A caller who was in `room` hung up or was hung up on, with the call's counters."""

    identity: str
    call_id: str
    reason: str  # caller_hung_up | max_length | media_timeout | replaced | gateway_stopped ...
    duration_seconds: float
    packets_received: int
    packets_lost: int
