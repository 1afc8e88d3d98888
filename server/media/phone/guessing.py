"""Bounds on guessing PINs: per source address and across all sources.

Per call the gateway allows three tries (`PinEntry`). Every PIN check first takes a
`Hold`: one failure set aside before the PIN is looked up, given back when the PIN is
right. So however many calls from one address key their PINs at the same moment, no
more checks are ever in flight or done than failures are left (checking first and
counting after let 52 of 60 simultaneous guesses through a limit of 10).

Per source address a token bucket holds `per_source` failures refilled over
`window_seconds`: when it is empty, new calls from that address are refused (403) and
a PIN keyed in a call from it is not checked.

Across all sources a second bucket holds `global_per_minute` failures, and it bounds
the checks from every address that has not yet given a right PIN: once it is empty,
a PIN from such an address is not checked at all (refused and counted) until the
bucket refills. An attacker with any number of addresses thus gets at most
`global_per_minute` guesses a minute (plus the burst) from them together. Addresses
that have given a right PIN (`proven`: a trunk, a caller who got in before) are
checked as before, bounded by their own bucket, so callers through a trunk or from
known addresses still get in during an attack; a first call from a new address has
to wait until the attack ebbs. Slowing every check instead would not bound guessing
(an attacker hangs up and calls again in parallel), and refusing every check would
hand the attacker a switch that turns the phone off for everyone.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from server.api.throttle import MAX_TRACKED, Buckets
from server.signaling.ratelimit import TokenBucket


class PinCheckRefused(Exception):
    """A PIN is not to be checked at all (`reason`: source_locked or over_ceiling)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Hold:
    """One failure taken for a PIN about to be checked (given back if it is right)."""

    source: str
    counted_globally: bool


class PinGuard:
    def __init__(self, per_source: int, window_seconds: float, global_per_minute: int) -> None:
        self._sources = Buckets(per_source * 60 / window_seconds, burst=per_source)
        self._all = TokenBucket(global_per_minute / 60, global_per_minute)
        self._proven: OrderedDict[str, None] = OrderedDict()

    def refuses(self, source: str) -> bool:
        """Whether `source` has used up its failures (no call or PIN check from it)."""
        return self._sources.get(source).empty()

    def hold(self, source: str) -> Hold:
        """Take one failure before a PIN from `source` is checked; `PinCheckRefused` when
        it must not be checked (the attempt counts against the source all the same)."""
        bucket = self._sources.get(source)
        if not bucket.take():
            raise PinCheckRefused("source_locked")
        if source in self._proven:
            return Hold(source, counted_globally=False)
        if not self._all.take():
            raise PinCheckRefused("over_ceiling")
        return Hold(source, counted_globally=True)

    def give_back(self, hold: Hold, *, proven: bool) -> None:
        """The PIN was a known one: its failure is returned; `proven` (it let the caller
        in) exempts its source from the global ceiling from now on."""
        self._sources.get(hold.source).give()
        if hold.counted_globally:
            self._all.give()
        if proven:
            self._proven.pop(hold.source, None)
            self._proven[hold.source] = None
            if len(self._proven) > MAX_TRACKED:
                self._proven.popitem(last=False)
