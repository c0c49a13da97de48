"""Reconnect delays: exponential, capped, with full jitter."""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["backoff"]


def backoff(
    *,
    initial_s: float = 0.05,
    max_s: float = 5.0,
    factor: float = 2.0,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Yield delays drawn uniformly from [0, ceiling], the ceiling growing by ``factor`` up
    to ``max_s`` ("full jitter").

    Full jitter spreads a fleet of hub processes that lost the same Redis over the whole
    window, so that they do not reconnect in lock-step; of the usual schemes it does the
    least work in total for the same spread.
    """
    rand = rng or random.Random()
    ceiling = initial_s
    while True:
        yield rand.uniform(0.0, ceiling)
        ceiling = min(max_s, ceiling * factor)
