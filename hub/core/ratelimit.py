"""A token bucket for the per-connection publish rate limit. Pure: the caller passes the time."""

from __future__ import annotations

import math

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; each publish takes one."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst or max(1, math.ceil(rate)))
        self._tokens = self.burst
        self._last = now

    def allow(self, now: float) -> bool:
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False
