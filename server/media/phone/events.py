"""Room events only the phone gateway produces (joins and leaves are the registry's).

A rejected PIN names no room: those events carry `room=""`, the caller's masked
number and the call id, so a log can still tell one failing caller from another.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.rooms.events import RoomEvent


@dataclass(frozen=True)
class PhonePinRejected(RoomEvent):
    """A caller's PIN matched no room (DTMF, Request-URI or X-Room-Pin)."""

    call_id: str
    caller: str  # the caller's number with all but the last digits masked
    reason: str  # wrong_pin | no_pin (nothing keyed before the prompt timed out)
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
