"""Brokers, chosen by URL scheme; concrete classes are imported lazily."""

from __future__ import annotations

from typing import Any

from hub.brokers.base import Broker, BrokerEventHandler, BrokerStats
from hub.core.errors import ConfigError

__all__ = [
    "Broker",
    "BrokerEventHandler",
    "BrokerStats",
    "check_broker_url",
    "create_broker",
]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://")


def check_broker_url(url: str | None) -> None:
    """Refuse a broker URL that no broker takes, or a malformed one, with what to fix
    (ConfigError), without connecting: ``hub serve`` and ``hub check`` call it before they
    start anything."""
    if url is None or url == "memory://":
        return
    if url.startswith(REDIS_SCHEMES):
        from hub.brokers.redis.sentinel import SentinelTarget, is_sentinel_url
        from hub.brokers.resp import Endpoint

        try:
            if is_sentinel_url(url):
                SentinelTarget.from_url(url)
            else:
                Endpoint.from_url(url)
        except ValueError as exc:
            raise ConfigError("HUB_REDIS_URL", url, str(exc)) from None
        return
    if url.startswith("redis+cluster://"):
        raise ConfigError(
            "HUB_REDIS_URL",
            url,
            "Redis Cluster is not supported yet (docs/deploy.md, Redis Cluster); "
            "use a non-cluster endpoint, or Redis Sentinel (redis+sentinel://)",
        )
    raise ConfigError(
        "HUB_REDIS_URL", url, "use redis://, rediss://, unix://, redis+sentinel:// or memory://"
    )


def create_broker(url: str | None, **options: Any) -> Broker:
    """``None`` or ``memory://``: MemoryBroker; ``redis://``, ``rediss://``, ``unix://``, and
    ``redis+sentinel://`` (the master found through Redis Sentinel): Redis.

    ``options`` are passed to RedisBroker (prefix, buffer bounds, probe timings).
    """
    check_broker_url(url)
    if url is None or url == "memory://":
        from hub.brokers.memory import MemoryBroker

        return MemoryBroker()
    from hub.brokers.redis import RedisBroker

    return RedisBroker(url=url, **options)
