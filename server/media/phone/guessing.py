"""Bounds on guessing PINs: per source address and across all sources.

Per call the gateway allows three tries (`PinEntry`). Per source address a token bucket
holds `per_source` failures refilled over `window_seconds`: when it is empty, new calls
from that address are refused (403) and a PIN keyed in a call from it is not checked.

Across all sources a second bucket holds `global_per_minute` failures. Once it is
empty the gateway is under a distributed attack, and what keeps legitimate callers
getting in is that correct PINs are never refused or delayed: instead each further
failure drains its source's bucket at once, so every address that guesses wrong even
once is locked out for `window_seconds / per_source` (one token's refill), while
addresses that have not failed call in as before. Slowing every check instead would
not bound guessing (an attacker hangs up and calls again in parallel) and refusing
every check would hand the attacker a switch that turns the phone off for everyone.
"""

from __future__ import annotations

from server.api.throttle import Buckets
from server.signaling.ratelimit import TokenBucket


class PinGuard:
    def __init__(self, per_source: int, window_seconds: float, global_per_minute: int) -> None:
        self._sources = Buckets(per_source * 60 / window_seconds, burst=per_source)
        self._all = TokenBucket(global_per_minute / 60, global_per_minute)

    def refuses(self, source: str) -> bool:
        """Whether `source` has used up its failures (no call or PIN check from it)."""
        return self._sources.get(source).empty()

    def failed(self, source: str) -> bool:
        """Count one wrong PIN from `source`; whether that address is now locked out."""
        bucket = self._sources.get(source)
        bucket.take()
        if not self._all.take():  # over the global ceiling: one failure locks the source
            while bucket.take():
                pass
        return bucket.empty()

    @property
    def over_global_ceiling(self) -> bool:
        return self._all.empty()
