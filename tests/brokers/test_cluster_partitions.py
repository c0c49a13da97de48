"""The Cluster partition map: balanced tags, stable partitions, one slot per channel's names."""

from __future__ import annotations

import collections

import pytest
from redis.crc import key_slot

from hub.brokers.cluster import ClusterTarget, PartitionMap, balanced_tags, parse_cluster_url
from hub.core.errors import ConfigError


def spread(slots: list[int], num_masters: int) -> list[int]:
    """How many of ``slots`` each of ``num_masters`` equal contiguous slot ranges holds."""
    counts = collections.Counter(slot * num_masters // 16384 for slot in slots)
    return [counts[m] for m in range(num_masters)]


@pytest.mark.parametrize("num_masters", [3, 4, 16])
def test_tags_spread_evenly_over_masters(num_masters: int) -> None:
    """32 partitions over N masters' contiguous ranges: no master holds 2 more than another."""
    counts = spread([key_slot(t.encode()) for t in balanced_tags(32)], num_masters)
    assert max(counts) - min(counts) <= 1, counts


def test_naive_tags_do_not_spread() -> None:
    """The reason for the search: {0}..{31} leave a 16-master cluster uneven (centrifuge#554)."""
    counts = spread([key_slot(str(i).encode()) for i in range(32)], 16)
    assert max(counts) - min(counts) > 1, counts


def test_every_name_of_a_channel_shares_its_partition_slot() -> None:
    """The sharded channel, stream, meta and presence key hash to the partition's slot."""
    pm = PartitionMap(prefix="hub:", num_partitions=32)
    for channel in ("news", "chat:1", "a{b}c", "ü"):
        slot = pm.slot(pm.partition(channel))
        names = [pm.pubsub(channel), *pm.history_keys(channel), *pm.presence_keys(channel)]
        names.append(pm.names(pm.partition(channel)).probe(b"hub-1"))
        assert {key_slot(n) for n in names} == {slot}, channel


def test_partitions_are_stable_and_all_used() -> None:
    """The same channel maps to the same partition in every process; 1000 channels use all 32."""
    a, b = PartitionMap(num_partitions=32), PartitionMap(num_partitions=32)
    channels = [f"room-{i}" for i in range(1000)]
    assert [a.partition(c) for c in channels] == [b.partition(c) for c in channels]
    assert {a.partition(c) for c in channels} == set(range(32))


def test_cluster_url_seeds() -> None:
    """A comma-separated seed list parses to (host, port) pairs; the port defaults to 6379."""
    url = "redis+cluster://host1:7001,127.0.0.1:7002,h3"
    assert parse_cluster_url(url) == [("host1", 7001), ("127.0.0.1", 7002), ("h3", 6379)]


@pytest.mark.parametrize("url", ["redis://h:1", "redis+cluster://", "redis+cluster://h:x,h2:1"])
def test_bad_cluster_url_is_refused(url: str) -> None:
    """A URL hub cannot use is refused with the setting's name and what to fix."""
    with pytest.raises(ConfigError, match="HUB_REDIS_URL"):
        parse_cluster_url(url)


def test_cluster_url_credentials_tls_and_partitions() -> None:
    """User and password (percent-decoded), rediss+cluster:// for TLS, and partitions=."""
    target = ClusterTarget.from_url("rediss+cluster://app:p%40ss@h1:7001,h2:7002?partitions=64")
    assert target.seeds == (("h1", 7001), ("h2", 7002))
    assert (target.username, target.password, target.tls) == ("app", "p@ss", True)
    assert target.num_partitions == 64
    assert ClusterTarget.from_url("redis+cluster://h:1").num_partitions == 32


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://h:1/0", "one database"),
        ("redis+cluster://h:1?db=2", "unknown option"),
        ("redis+cluster://h:1?partitions=x", "partitions must be"),
        ("redis+cluster://h:1?partitions=5000", "partitions must be"),
    ],
)
def test_cluster_url_options_are_checked(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        ClusterTarget.from_url(url)


def test_a_cluster_url_makes_a_cluster_broker_of_its_partitions() -> None:
    """create_engines picks the cluster broker: one partition broker per partition, each
    with its own probe channel in its partition's slot."""
    from hub.brokers import BrokerOptions, create_engines
    from hub.brokers.cluster.broker import ClusterBroker

    url = "redis+cluster://127.0.0.1:7001?partitions=8"
    broker = create_engines(url, BrokerOptions(prefix="x:")).broker
    assert isinstance(broker, ClusterBroker)
    assert len(broker.partitions) == 8
    pm = broker.map
    assert [key_slot(pm.names(i).probe(b"p")) for i in range(8)] == [pm.slot(i) for i in range(8)]
