"""Reconnect delays (pure)."""

from __future__ import annotations

import itertools
import random

from hub.core.backoff import backoff


def test_grows_to_the_ceiling_with_jitter() -> None:
    """Delays double up to max_s and each lies in [50%, 100%] of its ceiling."""
    delays = list(itertools.islice(backoff(initial_s=0.1, max_s=1.0, rng=random.Random(1)), 8))
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    for d, c in zip(delays, ceilings, strict=True):
        assert c / 2 <= d <= c
