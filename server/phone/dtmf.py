"""DTMF: digits out of RFC 4733 telephone-events in the RTP, or out of SIP INFO.

A sender repeats an event's packets while the key is held and sends its end packet
three times; all of them carry the event's start timestamp, which is what tells
one key press from the next press of the same key.

Some trunks and PBXs send key presses as SIP INFO requests instead, one per press:
`application/dtmf-relay` (`Signal=5` and `Duration=160` lines, the common form) or
`application/dtmf` (the digit alone).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

EVENTS = "0123456789*#ABCD"
INFO_TYPES = ("application/dtmf-relay", "application/dtmf")
PAYLOAD = struct.Struct("!BBH")


@dataclass(frozen=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        return EVENTS[self.event] if self.event < len(EVENTS) else None

    def serialise(self) -> bytes:
        return PAYLOAD.pack(
            self.event, (0x80 if self.end else 0) | (self.volume & 0x3F), self.duration & 0xFFFF
        )

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent | None:
        if len(payload) < PAYLOAD.size:
            return None
        event, flags, duration = PAYLOAD.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)


class DtmfReceiver:
    """Turns a call's telephone-event packets into digits, one per key press."""

    def __init__(self) -> None:
        self._current: int | None = None  # start timestamp of the press in progress
        self._current_digit: str | None = None
        self._reported: int | None = None  # start timestamp of the last press reported

    def feed(self, timestamp: int, payload: bytes) -> str:
        """The digits this packet completes: usually '' (a repeat, a continuation,
        noise) or one digit."""
        event = TelephoneEvent.parse(payload)
        if event is None or event.digit is None or timestamp == self._reported:
            return ""
        completed = ""
        if timestamp != self._current:
            # A new press. If the previous one never showed its end packet (all three
            # lost), it still happened: report it now.
            if self._current_digit is not None:
                completed = self._current_digit
            self._current, self._current_digit = timestamp, event.digit
        if event.end:
            self._reported = timestamp
            self._current, self._current_digit = None, None
            completed += event.digit
        return completed


def info_digit(content_type: str, body: bytes) -> str | None:
    """The key an INFO body of one of `INFO_TYPES` carries, or None if it carries none.
    Events 10 and 11 are `*` and `#` (as some Cisco gateways send them)."""
    try:
        text = body.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if content_type == "application/dtmf-relay":
        fields = dict(line.partition("=")[::2] for line in text.splitlines())
        text = next((v.strip() for k, v in fields.items() if k.strip().lower() == "signal"), "")
    if text.isdigit() and int(text) < len(EVENTS):
        return EVENTS[int(text)]
    return text.upper() if len(text) == 1 and text.upper() in EVENTS else None
