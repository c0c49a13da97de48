"""redis-py clients for a broker URL, for the parts that are not on the lean data path: the
Publisher of ``hub.client`` and the HTTP API's channel listing.

``redis://`` gives a plain client, ``redis+sentinel://`` one that asks the sentinels where the
master is, and ``redis+cluster://`` redis-py's cluster client (which follows MOVED and ASK
itself). :func:`names_for` gives the Redis names those clients must use for a channel:
sharded ones, in the channel's partition, on a cluster.
"""

from __future__ import annotations

from typing import Unpack

import redis
import redis.asyncio as aioredis
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as SyncClusterClient

from hub.brokers.cluster.partitions import ClusterTarget, PartitionMap, is_cluster_url
from hub.brokers.names import FlatNames, Names
from hub.brokers.redis import sentinel
from hub.brokers.redis.client_options import AsyncOptions, SyncOptions

__all__ = ["async_client", "names_for", "subscribed_channels", "sync_client"]


def names_for(url: str, prefix: str) -> Names:
    """The Redis names of channels under ``prefix`` on the Redis at ``url``."""
    if is_cluster_url(url):
        target = ClusterTarget.from_url(url)
        return PartitionMap(prefix=prefix, num_partitions=target.num_partitions)
    return FlatNames(prefix.encode())


def sync_client(url: str, **kwargs: Unpack[SyncOptions]) -> redis.Redis | SyncClusterClient:
    if not is_cluster_url(url):
        return sentinel.sync_client(url, **kwargs)
    target = ClusterTarget.from_url(url)
    return SyncClusterClient(
        startup_nodes=[ClusterNode(h, p) for h, p in target.seeds],  # type: ignore[no-untyped-call]
        username=target.username,
        password=target.password,
        ssl=target.tls,
        require_full_coverage=False,
        **kwargs,
    )


def async_client(
    url: str, **kwargs: Unpack[AsyncOptions]
) -> aioredis.Redis | aioredis.RedisCluster:
    if not is_cluster_url(url):
        return sentinel.async_client(url, **kwargs)
    from hub.brokers.cluster.topology import cluster_client

    return cluster_client(ClusterTarget.from_url(url), **kwargs)


async def subscribed_channels(url: str, prefix: str) -> dict[str, int]:
    """Every channel under ``prefix`` that some process subscribes to in Redis, with the
    number of subscribed processes (PUBSUB NUMSUB; on Redis Cluster, the sharded channels of
    every node, PUBSUB SHARDNUMSUB), through a short-lived client."""
    client = async_client(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
    sharded = isinstance(client, aioredis.RedisCluster)
    names = PartitionMap(prefix=prefix, num_partitions=1) if sharded else None
    try:
        if sharded:
            keys = await client.pubsub_shardchannels(pattern)
        else:
            keys = await client.pubsub_channels(pattern)
        channels: dict[bytes, str] = {}
        for key in keys:
            raw = key if isinstance(key, bytes) else str(key).encode()
            channel = names.channel_of(raw) if names else raw[len(prefix.encode()) :].decode()
            if channel is not None and not channel.startswith("$"):
                channels[raw] = channel
        if not channels:
            return {}
        if sharded:
            counts = await client.pubsub_shardnumsub(*channels)
        else:
            counts = await client.pubsub_numsub(*channels)
        result: dict[str, int] = {}
        for name, number in counts:
            raw = name if isinstance(name, bytes) else str(name).encode()
            if raw in channels:
                result[channels[raw]] = int(number)
        return result
    finally:
        await client.aclose()
