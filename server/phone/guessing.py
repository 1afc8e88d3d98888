"""Bounds on guessing PINs: per source address and across all sources.

Per call the gateway allows three tries (`PinEntry`). Every PIN check first takes a
`Hold`: one failure set aside before the PIN is looked up, given back when the PIN is
right. So however many calls from one address key their PINs at the same moment, no
more checks are ever in flight or done than failures are left (checking first and
counting after let 52 of 60 simultaneous guesses through a limit of 10).

Per source address a token bucket holds `per_source` failures refilled over
`window_seconds`: when it is empty, new calls from that address are refused (403) and
a PIN keyed in a call from it is not checked.

Across all sources, `global_per_minute` failures a minute (and as a burst) is the
ceiling for everyone together, proven addresses included: once it is reached, a PIN is
not checked at all (refused and counted) until it refills. An attacker with any number
of addresses thus gets at most `global_per_minute` guesses a minute (plus one burst).
The ceiling is split in two buckets so that an attack from new addresses does not
refuse the callers a trunk brings: a quarter (`proven_share`) for addresses that have
given a right PIN before (`proven`: a trunk, a caller who got in before), the rest for
all other addresses. An address that proved itself once (an attacker who is a member,
say) thus draws on the small share with every other proven address: it cannot add its
own budget to the ceiling, as an exemption used to let it. A first call from a new
address during an attack has to wait until the attack ebbs. Slowing every check
instead would not bound guessing (an attacker hangs up and calls again in parallel),
and refusing every check would hand the attacker a switch that turns the phone off for
everyone.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from server.signaling.ratelimit import MAX_TRACKED, Buckets, TokenBucket


class PinCheckRefused(Exception):
    """A PIN is not to be checked at all (`reason`: source_locked or over_ceiling)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Hold:
    """One failure taken for a PIN about to be checked (given back if it is right)."""

    source: str
    ceiling: TokenBucket  # the share of the global ceiling it was taken from


@dataclass(frozen=True)
class GuardState:
    """The bounds as they stand, for operators (`PinGuard.snapshot`)."""

    blocked: tuple[tuple[str, float], ...]  # (source, seconds until it may try again)
    ceiling_engaged: bool  # the global ceiling refuses PINs from new addresses now
    ceiling_per_minute: int


class PinGuard:
    def __init__(self, per_source: int, window_seconds: float, global_per_minute: int) -> None:
        self._sources = Buckets(per_source * 60 / window_seconds, burst=per_source)
        proven_share = global_per_minute // 4  # 0 below 4: then one bucket for everyone
        newcomers = global_per_minute - proven_share
        self._newcomers = TokenBucket(newcomers / 60, newcomers)
        self._known = (
            TokenBucket(proven_share / 60, proven_share) if proven_share else self._newcomers
        )
        self._proven: OrderedDict[str, None] = OrderedDict()
        self._per_minute = global_per_minute

    def refuses(self, source: str) -> bool:
        """Whether `source` has used up its failures (no call or PIN check from it)."""
        return self._sources.get(source).empty()

    def hold(self, source: str) -> Hold:
        """Take one failure before a PIN from `source` is checked; `PinCheckRefused` when
        it must not be checked (the attempt counts against the source all the same)."""
        bucket = self._sources.get(source)
        if not bucket.take():
            raise PinCheckRefused("source_locked")
        ceiling = self._known if source in self._proven else self._newcomers
        if not ceiling.take():
            raise PinCheckRefused("over_ceiling")
        return Hold(source, ceiling)

    def give_back(self, hold: Hold, *, proven: bool) -> None:
        """The PIN was a known one: its failure is returned; `proven` (it let the caller
        in) moves its source to the proven share of the global ceiling from now on."""
        self._sources.get(hold.source).give()
        hold.ceiling.give()
        if proven:
            self._proven.pop(hold.source, None)
            self._proven[hold.source] = None
            if len(self._proven) > MAX_TRACKED:
                self._proven.popitem(last=False)

    def snapshot(self) -> GuardState:
        """Which sources are blocked and for how long, and whether the ceiling is reached."""
        blocked = [
            (str(source), bucket.seconds_until())
            for source, bucket in self._sources.items()
            if bucket.empty()
        ]
        blocked.sort(key=lambda item: item[1], reverse=True)
        return GuardState(
            blocked=tuple(blocked),
            ceiling_engaged=self._newcomers.empty(),
            ceiling_per_minute=self._per_minute,
        )
