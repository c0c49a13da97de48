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
    """Yield delays that grow by ``factor`` up to ``max_s``, each jittered to [50%, 100%].

    Jitter spreads a fleet of hub processes that lost the same Redis, so that they do not
    reconnect in lock-step.
    """
    rand = rng or random.Random()
    ceiling = initial_s
    while True:
        yield ceiling * (0.5 + rand.random() / 2)
        ceiling = min(max_s, ceiling * factor)
