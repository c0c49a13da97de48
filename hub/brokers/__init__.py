"""Engines, chosen by URL scheme: a broker and the presence manager beside it. Concrete
classes are imported lazily."""

from __future__ import annotations

from dataclasses import dataclass

from hub.brokers.base import Broker, BrokerEventHandler, BrokerStats, PresenceManager
from hub.brokers.options import BrokerOptions
from hub.core.errors import ConfigError, redact_url

__all__ = [
    "Broker",
    "BrokerEventHandler",
    "BrokerOptions",
    "BrokerStats",
    "Engines",
    "PresenceManager",
    "check_broker_url",
    "create_engines",
]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://")
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def check_broker_url(url: str | None) -> None:
    """Refuse a broker URL that no broker takes, or a malformed one, with what to fix
    (ConfigError, with the password masked), without connecting: ``hub serve`` and
    ``hub check`` call it before they start anything."""
    if url is None or url == "memory://":
        return
    try:
        _check_broker_url(url)
    except ConfigError as exc:
        shown = redact_url(url)
        raise ConfigError(exc.key, shown, exc.reason.replace(url, shown)) from None


def _check_broker_url(url: str) -> None:
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
    if url.startswith(CLUSTER_SCHEMES):
        from hub.brokers.cluster.partitions import ClusterTarget

        ClusterTarget.from_url(url)
        return
    raise ConfigError(
        "HUB_REDIS_URL",
        url,
        "use redis://, rediss://, unix://, redis+sentinel://, redis+cluster:// or memory://",
    )


@dataclass(frozen=True)
class Engines:
    """What the node runs on: the message broker, and presence beside it."""

    broker: Broker
    presence: PresenceManager


def create_engines(url: str | None, options: BrokerOptions | None = None) -> Engines:
    """``None`` or ``memory://``: the memory engine; ``redis://``, ``rediss://``, ``unix://``,
    and ``redis+sentinel://`` (the master found through Redis Sentinel): Redis;
    ``redis+cluster://`` and ``rediss+cluster://``: Redis Cluster, with sharded pub/sub.

    ``options`` (prefix, buffer bounds, probe timings) are for Redis and Redis Cluster; the
    memory engine needs none. Raises ConfigError for a URL that no engine takes.
    """
    check_broker_url(url)
    if url is None or url == "memory://":
        from hub.brokers.memory import MemoryBroker, MemoryPresence

        memory = MemoryBroker()
        return Engines(memory, MemoryPresence(memory.publish))
    if url.startswith(CLUSTER_SCHEMES):
        from hub.brokers.cluster.broker import ClusterBroker

        cluster = ClusterBroker(url=url, options=options)
        return Engines(cluster, cluster.presence())
    from hub.brokers.redis import RedisBroker

    redis = RedisBroker(url=url, options=options)
    return Engines(redis, redis.presence())
