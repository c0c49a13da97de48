"""Brokers, chosen by URL scheme; concrete classes are imported lazily."""

from __future__ import annotations

from typing import Any

from hub.brokers.base import Broker, BrokerEventHandler, BrokerStats

__all__ = ["Broker", "BrokerEventHandler", "BrokerStats", "create_broker"]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://")


def create_broker(url: str | None, **options: Any) -> Broker:
    """``None`` or ``memory://``: MemoryBroker; ``redis://``, ``rediss://``, ``unix://``, and
    ``redis+sentinel://`` (the master found through Redis Sentinel): Redis.

    ``options`` are passed to RedisBroker (prefix, buffer bounds, probe timings).
    """
    if url is None or url == "memory://":
        from hub.brokers.memory import MemoryBroker

        return MemoryBroker()
    if url.startswith(REDIS_SCHEMES):
        from hub.brokers.redis import RedisBroker

        try:
            return RedisBroker(url=url, **options)
        except ValueError as exc:  # a malformed sentinel URL: say what to fix
            from hub.core.errors import ConfigError

            raise ConfigError("HUB_REDIS_URL", url, str(exc)) from None
    from hub.core.errors import ConfigError

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
