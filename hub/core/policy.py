"""The publish policy of one connection: may it publish on this channel, and is it under its
rate limit. Written once for raw mode, hub.v1 and any later transport; ``Node.publish_from``
applies it and counts what it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.core.auth import Grant
from hub.core.protocol import FORBIDDEN, PUBLISH_REJECTED, RATE_LIMITED
from hub.core.ratelimit import TokenBucket

__all__ = ["BUFFER_FULL", "PublishPolicy", "Refusal"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a publish was refused: a stable error ``code``, a ``message`` that says what to do,
    and a short ``reason`` that fits a WebSocket close frame (at most 123 bytes)."""

    code: str
    message: str
    reason: str


BUFFER_FULL = Refusal(
    PUBLISH_REJECTED,
    "the broker's buffer is full (Redis unreachable); not published: retry later",
    "the broker's buffer is full",
)


class PublishPolicy:
    """What one connection may publish: its token's grant and its rate limit, either absent."""

    __slots__ = ("bucket", "grant")

    def __init__(self, grant: Grant | None = None, bucket: TokenBucket | None = None) -> None:
        self.grant = grant
        self.bucket = bucket

    @classmethod
    def create(cls, grant: Grant | None, *, rate: float, burst: int, now: float) -> PublishPolicy:
        """The policy for a connection opened at ``now``; ``rate`` 0 means no rate limit."""
        return cls(grant, TokenBucket(rate, burst, now) if rate else None)

    def check(self, channel: str, now: float) -> Refusal | None:
        """None if a publish on ``channel`` at ``now`` may go ahead (it takes a token)."""
        if self.grant is not None and not self.grant.can_publish(channel):
            return Refusal(
                FORBIDDEN,
                f"the token may not publish to {channel}",
                "this token may not publish to the channel",
            )
        bucket = self.bucket
        if bucket is not None and not bucket.allow(now):
            return Refusal(
                RATE_LIMITED,
                f"publish rate limit exceeded ({bucket.rate:g}/s, burst {bucket.burst:g}); "
                "this message was not published: slow down and resend",
                "publish rate limit exceeded",
            )
        return None
