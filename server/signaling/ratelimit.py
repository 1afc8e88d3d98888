"""Token buckets: a steady rate with a burst allowance, alone or one per key."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from itertools import islice

# Keys whose bucket is remembered; beyond it the least recently used full one is forgotten.
MAX_TRACKED = 10_000
# How many of the longest-idle buckets are looked at for a full one to forget.
FORGET_SCAN = 16

# What a bucket made from now on reads the time from (a test sets a jobs.clock.ManualClock).
clock: Callable[[], float] = time.monotonic


class TokenBucket:
    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._clock = clock
        self._last = self._clock()

    def empty(self) -> bool:
        """Whether not even one token is left (without spending any)."""
        now = self._clock()
        return min(self.burst, self._tokens + (now - self._last) * self.rate) < 1

    def seconds_until(self, tokens: float = 1.0) -> float:
        """How long until `tokens` are there (0 when they are now; inf at a zero rate)."""
        now = self._clock()
        missing = tokens - min(self.burst, self._tokens + (now - self._last) * self.rate)
        if missing <= 0:
            return 0.0
        return missing / self.rate if self.rate > 0 else float("inf")

    def full(self) -> bool:
        """Whether it has refilled to its burst: forgetting it then forgives nothing."""
        now = self._clock()
        return self._tokens + (now - self._last) * self.rate >= self.burst

    def take(self, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are that many; say whether it was allowed."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def take_up_to(self, most: int) -> int:
        """Spend as many whole tokens as there are, at most `most`; returns how many."""
        self.take(0)  # refill up to now first
        taken = min(most, int(self._tokens))
        self._tokens -= taken
        return taken

    def give(self, cost: float = 1.0) -> None:
        """Return `cost` tokens taken for something that turned out not to count."""
        self.take(0)  # refill up to now first
        self._tokens = min(self.burst, self._tokens + cost)


class Buckets:
    """Token buckets by key (a client address, an email address, a person in a room),
    at most `MAX_TRACKED` of them. Past the bound a key's bucket is forgotten only once it
    has refilled (the longest idle first): forgetting a bucket still short of tokens
    would hand its key a fresh burst, so a flood of new keys (addresses rotated, emails
    made up) could reset a victim's limit (a mailbox bombed with sign-in links) or the
    attacker's own. While every bucket looked at is short, new keys share one overflow
    bucket with the same rate: a flood slows newcomers until it ebbs, never lifts a limit.
    """

    def __init__(self, per_minute: float, burst: int | None = None):
        self._rate = per_minute / 60
        self._burst = burst or max(1, int(per_minute))
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()
        self._overflow = TokenBucket(self._rate, self._burst)

    def __len__(self) -> int:
        return len(self._buckets)

    def items(self) -> list[tuple[Hashable, TokenBucket]]:
        """Every remembered key and its bucket (without touching their recency)."""
        return list(self._buckets.items())

    def get(self, key: Hashable) -> TokenBucket:
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED and not self._forget_one():
                return self._overflow
            bucket = TokenBucket(self._rate, self._burst)
        self._buckets[key] = bucket
        return bucket

    def _forget_one(self) -> bool:
        """Forget the longest-idle bucket that has refilled, among the `FORGET_SCAN`
        idlest; whether there was one."""
        for key, bucket in islice(self._buckets.items(), FORGET_SCAN):
            if bucket.full():
                del self._buckets[key]
                return True
        return False
