"""Token buckets: a steady rate with a burst allowance."""

from __future__ import annotations

import time


class TokenBucket:
    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._clock = time.monotonic
        self._last = self._clock()

    def empty(self) -> bool:
        """Whether not even one token is left (without spending any)."""
        now = self._clock()
        return min(self.burst, self._tokens + (now - self._last) * self.rate) < 1

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
