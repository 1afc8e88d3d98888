"""Token buckets: a steady rate with a burst allowance, alone or one per key."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

# Keys whose bucket is remembered; beyond it the least recently used is forgotten.
MAX_TRACKED = 10_000

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

    def take(self, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are that many; say whether it was allowed."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def give(self, cost: float = 1.0) -> None:
        """Return `cost` tokens taken for something that turned out not to count."""
        self.take(0)  # refill up to now first
        self._tokens = min(self.burst, self._tokens + cost)


class Buckets:
    """Token buckets by key (a client address, a person in a room), forgetting the least
    recently used beyond `MAX_TRACKED`, one at a time: a flood of new keys (spoofed
    addresses) forgets only the keys idle for longest, never every bucket at once."""

    def __init__(self, per_minute: float, burst: int | None = None):
        self._rate = per_minute / 60
        self._burst = burst or max(1, int(per_minute))
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def items(self) -> list[tuple[Hashable, TokenBucket]]:
        """Every remembered key and its bucket (without touching their recency)."""
        return list(self._buckets.items())

    def get(self, key: Hashable) -> TokenBucket:
        bucket = self._buckets.pop(key, None) or TokenBucket(self._rate, self._burst)
        self._buckets[key] = bucket
        while len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)
        return bucket
