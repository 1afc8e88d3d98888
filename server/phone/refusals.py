"""What operators see of PIN guessing: refused PINs counted by reason, and the last few.

Fed by the gateway wherever a PIN is refused (`Gateway._rejected`), read by the console
(`GET /api/v1/phone/guessing`). It never holds the digits tried: only when, from where,
how and why, and the room when the PIN named one. Memory is bounded: the last hour's
refusal times are kept to count them (an attack refused at the global ceiling of 60 a
minute is at most a few thousand), beyond `MAX_HOURLY` the oldest are dropped.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

HOUR = 3600.0
MAX_HOURLY = 100_000


@dataclass(frozen=True)
class Refusal:
    at: float  # Unix seconds
    source: str  # the address the SIP request came from
    reason: str  # wrong_pin | no_pin | source_locked | over_ceiling | removed | room_closed
    via: str  # dtmf | request_uri | header | call (a blocked source's call, before any PIN)
    room: str  # "" when the PIN named no room


@dataclass(frozen=True)
class RefusalCounts:
    last_hour: dict[str, int]
    since_start: dict[str, int]
    recent: tuple[Refusal, ...]  # newest first


class PinRefusals:
    def __init__(self, keep: int = 50) -> None:
        self._recent: deque[Refusal] = deque(maxlen=keep)
        self._hour: deque[tuple[float, str]] = deque(maxlen=MAX_HOURLY)
        self._total: Counter[str] = Counter()

    def record(self, refusal: Refusal) -> None:
        self._recent.append(refusal)
        self._hour.append((refusal.at, refusal.reason))
        self._total[refusal.reason] += 1

    def counts(self, now: float) -> RefusalCounts:
        """Counts by reason for the hour before `now` and since the gateway started."""
        while self._hour and self._hour[0][0] < now - HOUR:
            self._hour.popleft()
        return RefusalCounts(
            last_hour=dict(Counter(reason for _, reason in self._hour)),
            since_start=dict(self._total),
            recent=tuple(reversed(self._recent)),
        )
