"""The token bucket, driven by a fake clock."""

from __future__ import annotations

from hub.core.ratelimit import TokenBucket


def test_burst_then_rate() -> None:
    """A full bucket allows the burst at once, then refills at the rate."""
    bucket = TokenBucket(2.0, 3, now=0.0)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.allow(0.5) and not bucket.allow(0.5)
    assert [bucket.allow(10.0) for _ in range(4)] == [True, True, True, False]


def test_burst_defaults_to_the_rate() -> None:
    """Burst 0 means the rate, at least one."""
    assert TokenBucket(5.0, 0, now=0.0).burst == 5
    assert TokenBucket(0.2, 0, now=0.0).burst == 1
