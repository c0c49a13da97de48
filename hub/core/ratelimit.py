"""A token bucket for the per-connection rate limits (publishes, subscribed channels). Pure:
the caller passes the time."""

from __future__ import annotations

import math

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; each publish takes one, a
    subscribe one per channel."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst or max(1, math.ceil(rate)))
        self._tokens = self.burst
        self._last = now

    def allow(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if there are as many; False (taking none) otherwise. A cost
        over the burst costs the burst: it would never pass otherwise."""
        cost = min(cost, self.burst)
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens >= cost:
            self._tokens = tokens - cost
            return True
        self._tokens = tokens
        return False

    def wait_s(self, cost: float) -> float:
        """How long until ``cost`` tokens are there, from the last ``allow``."""
        return max(0.0, min(cost, self.burst) - self._tokens) / self.rate
