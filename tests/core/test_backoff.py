"""Reconnect delays (pure)."""

from __future__ import annotations

import itertools
import random

from hub.core.backoff import backoff


def test_grows_to_the_ceiling_with_jitter() -> None:
    """Delays double up to max_s and each lies in [0, its ceiling]."""
    delays = list(itertools.islice(backoff(initial_s=0.1, max_s=1.0, rng=random.Random(1)), 8))
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    for d, c in zip(delays, ceilings, strict=True):
        assert 0 <= d <= c


def test_the_jitter_is_full() -> None:
    """Past the ceiling, delays spread over the whole of [0, max_s], not only its top half."""
    delays = list(itertools.islice(backoff(initial_s=1.0, max_s=1.0, rng=random.Random(7)), 2000))
    assert min(delays) < 0.05 and max(delays) > 0.95
    assert 0.45 < sum(delays) / len(delays) < 0.55
    assert sum(d < 0.5 for d in delays) > 900
