"""The options hub passes to redis-py's clients (``hub.brokers.redispy``, ``sentinel.py``)."""

from __future__ import annotations

from typing import TypedDict

from redis.asyncio.retry import Retry as AsyncRetry
from redis.retry import Retry

__all__ = ["AsyncOptions", "SyncOptions"]


class _Timeouts(TypedDict, total=False):
    socket_timeout: float
    socket_connect_timeout: float


class SyncOptions(_Timeouts, total=False):
    retry: Retry


class AsyncOptions(_Timeouts, total=False):
    retry: AsyncRetry
