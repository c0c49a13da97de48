"""The options hub passes to redis-py's clients (``hub.brokers.redispy``, ``sentinel.py``)."""

from __future__ import annotations

from typing import TypedDict

from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["AsyncOptions", "SyncOptions", "no_retry"]


class _Timeouts(TypedDict, total=False):
    socket_timeout: float
    socket_connect_timeout: float


class SyncOptions(_Timeouts, total=False):
    retry: Retry


class AsyncOptions(_Timeouts, total=False):
    retry: AsyncRetry


def no_retry() -> AsyncRetry:
    """One try: redis-py 8 retries a failed connect 10 times with backoff by default, which
    makes a 1 s timeout to a silent host (a dropped SYN) 15 s or more. The caller has its
    own loop (the next sentinel, the broker's reconnect backoff)."""
    return AsyncRetry(NoBackoff(), 0)
