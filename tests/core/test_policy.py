"""A connection's publish policy: its token's grant, then its rate limit (pure)."""

from __future__ import annotations

from hub.core.auth import Grant
from hub.core.policy import BUFFER_FULL, PublishPolicy
from hub.core.protocol import FORBIDDEN, PUBLISH_REJECTED, RATE_LIMITED


def grant(*publish: str) -> Grant:
    return Grant(sub="u", exp=None, subscribe=["*"], publish=publish)


def test_no_grant_and_no_rate_allow_everything() -> None:
    """Rate 0 means no bucket; without a grant every channel may be published to."""
    policy = PublishPolicy.create(None, rate=0, burst=0, now=0.0)
    assert policy.bucket is None
    assert all(policy.check("any", now=0.0) is None for _ in range(1000))


def test_a_channel_outside_the_grant_is_forbidden() -> None:
    """The refusal names the channel and has a close reason that fits a close frame."""
    policy = PublishPolicy.create(grant("news.*"), rate=0, burst=0, now=0.0)
    assert policy.check("news.eu", 0.0) is None
    refusal = policy.check("chat", 0.0)
    assert refusal is not None and refusal.code == FORBIDDEN and "chat" in refusal.message
    assert len(refusal.reason.encode()) <= 123


def test_the_rate_limit_refuses_past_the_burst_and_refills_with_time() -> None:
    """Burst 2 at 1/s: two pass at once, the third is rate limited, a second later one more."""
    policy = PublishPolicy.create(None, rate=1.0, burst=2, now=0.0)
    assert policy.check("c", 0.0) is None and policy.check("c", 0.0) is None
    refusal = policy.check("c", 0.0)
    assert refusal is not None and refusal.code == RATE_LIMITED and "1/s" in refusal.message
    assert policy.check("c", 1.0) is None


def test_a_forbidden_publish_takes_no_token() -> None:
    """The grant is checked first: a refused channel leaves the bucket as it was."""
    policy = PublishPolicy.create(grant("ok"), rate=1.0, burst=1, now=0.0)
    assert policy.check("no", 0.0) is not None
    assert policy.check("ok", 0.0) is None


def test_buffer_full_is_a_publish_rejected_refusal() -> None:
    """BUFFER_FULL says to retry later, with a short close reason."""
    assert BUFFER_FULL.code == PUBLISH_REJECTED and "retry" in BUFFER_FULL.message
    assert len(BUFFER_FULL.reason.encode()) <= 123
