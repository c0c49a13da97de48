"""Channels → a fixed number of partitions, each with a hash tag of its own slot range.

Sharded pub/sub (SSUBSCRIBE) routes a channel name by its hash slot, so a batch of
SSUBSCRIBEs is legal only within one slot. Every channel therefore maps to one of N
partitions, and every Redis name of the channel carries the partition's hash tag:

- the sharded pub/sub channel ``<prefix>{<tag>}:<channel>``;
- the history and presence keys ``<prefix>{<tag>}:<channel>:stream|meta|presence``.

Sharing the tag is what lets the history script run as one atomic step in Cluster mode:
its keys and the channel it SPUBLISHes to hash to the same slot, so the offset order and
the publish order cannot diverge between two publishers. The cost is that a partition's
history load lands on one slot; with N partitions spread evenly over the masters, that is
the same spread the pub/sub load already has.

Naive tags ``{0}``…``{N-1}`` collide under CRC16 and leave masters idle (centrifuge#554),
so :func:`balanced_tags` searches, once at start-up, a tag whose slot lies inside the i-th
of N equal slot ranges. ``redis-cli --cluster create`` and rebalancing hand out contiguous
ranges, so equal ranges put N/masters partitions on each master.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from hub.core.errors import ConfigError

__all__ = [
    "CLUSTER_SCHEMES",
    "ClusterTarget",
    "PartitionMap",
    "PartitionNames",
    "balanced_tags",
    "is_cluster_url",
    "parse_cluster_url",
]

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
#: Every hub process and Publisher of one deployment must use the same number: it decides
#: which sharded channel carries a channel's messages.
DEFAULT_PARTITIONS = 32
#: One pub/sub connection per partition per process: this bounds them.
MAX_PARTITIONS = 1024

# Each partition's tag search tries this many candidates at most; the chance of one
# candidate landing in a 1/N range is 1/N, so N * 64 tries never run out in practice.
_TRIES_PER_PARTITION = 64


def balanced_tags(num_partitions: int) -> tuple[str, ...]:
    """One hash tag per partition; tag ``i`` hashes into the i-th of N equal slot ranges."""
    if not 1 <= num_partitions <= REDIS_CLUSTER_HASH_SLOTS:
        raise ValueError(f"num_partitions must be 1..{REDIS_CLUSTER_HASH_SLOTS}")
    tags = []
    for i in range(num_partitions):
        low = i * REDIS_CLUSTER_HASH_SLOTS // num_partitions
        high = (i + 1) * REDIS_CLUSTER_HASH_SLOTS // num_partitions
        for attempt in range(num_partitions * _TRIES_PER_PARTITION):
            tag = f"p{i}.{attempt}"
            if low <= key_slot(tag.encode()) < high:
                tags.append(tag)
                break
        else:  # pragma: no cover - a CRC16 property, checked by the tests for every N used
            raise RuntimeError(f"no tag found for partition {i} of {num_partitions}")
    return tuple(tags)


@dataclass(frozen=True)
class PartitionMap:
    """The names a channel uses in Redis Cluster, and the partition (slot) they live in.

    It is a ``hub.brokers.names.Names`` for any channel; :meth:`names` gives one partition's,
    whose probe channel lies in that partition's slot.
    """

    prefix: str = "hub:"
    num_partitions: int = DEFAULT_PARTITIONS
    tags: tuple[str, ...] = field(init=False)
    sharded: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", balanced_tags(self.num_partitions))

    def partition(self, channel: str) -> int:
        """A stable partition for the channel, the same in every process (CRC32, not hash())."""
        return zlib.crc32(channel.encode()) % self.num_partitions

    def slot(self, partition: int) -> int:
        """The hash slot of every name in the partition."""
        return key_slot(self.tags[partition].encode())

    def _base(self, channel: str) -> bytes:
        tag = self.tags[self.partition(channel)]
        return f"{self.prefix}{{{tag}}}:{channel}".encode()

    def pubsub(self, channel: str) -> bytes:
        """The sharded pub/sub channel (SPUBLISH/SSUBSCRIBE) of the channel."""
        return self._base(channel)

    def channel_of(self, pubsub: bytes) -> str | None:
        """The hub channel of a sharded channel name (PUBSUB SHARDCHANNELS), or None."""
        prefix = self.prefix.encode()
        if not pubsub.startswith(prefix + b"{"):
            return None
        _, sep, rest = pubsub[len(prefix) :].partition(b"}:")
        return rest.decode() if sep and not rest.startswith(b"$") else None

    def probe(self, name: bytes) -> bytes:
        return self.names(0).probe(name)

    def history_keys(self, channel: str) -> tuple[bytes, bytes]:
        """The stream and meta keys of the history script, in the pub/sub channel's slot."""
        base = self._base(channel)
        return base + b":stream", base + b":meta"

    def presence_keys(self, channel: str) -> tuple[bytes, bytes]:
        """The presence hash and processes zset of the channel, in the same slot."""
        base = self._base(channel)
        return base + b":presence", base + b":presence:processes"

    def names(self, partition: int) -> PartitionNames:
        return PartitionNames(self, partition)


@dataclass(frozen=True)
class PartitionNames:
    """One partition's names: the map's, and a probe channel in the partition's own slot."""

    map: PartitionMap
    partition: int
    sharded: bool = field(default=True, init=False)

    def pubsub(self, channel: str) -> bytes:
        return self.map.pubsub(channel)

    def probe(self, name: bytes) -> bytes:
        return f"{self.map.prefix}{{{self.map.tags[self.partition]}}}:$probe:".encode() + name

    def history_keys(self, channel: str) -> tuple[bytes, bytes]:
        return self.map.history_keys(channel)

    def presence_keys(self, channel: str) -> tuple[bytes, bytes]:
        return self.map.presence_keys(channel)


@dataclass(frozen=True)
class ClusterTarget:
    """A ``redis+cluster://`` URL: the seed nodes, their credentials, and the partitions."""

    seeds: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False
    num_partitions: int = DEFAULT_PARTITIONS

    @classmethod
    def from_url(cls, url: str) -> ClusterTarget:
        """``redis+cluster://[user:password@]host1:7001,host2:7002[?partitions=32]``, or
        ``rediss+cluster://`` for TLS. redis-py's ``from_url`` takes one host, so the
        comma-separated seed list is split here."""
        if not url.startswith(CLUSTER_SCHEMES):
            raise ConfigError(
                "HUB_REDIS_URL", url, f"a cluster URL starts with {' or '.join(CLUSTER_SCHEMES)}"
            )
        tls = url.startswith("rediss+")
        rest = url.split("://", 1)[1]
        netloc, _, tail = rest.partition("/")
        path, _, query = tail.partition("?")
        if "?" in netloc:
            netloc, _, query = netloc.partition("?")
        if path:
            raise ConfigError(
                "HUB_REDIS_URL", url, "a cluster has one database: leave the path out"
            )
        userinfo, _, hosts = netloc.rpartition("@")
        username, password = None, None
        if userinfo:
            user, colon, secret = userinfo.partition(":")
            username = unquote(user) or None
            password = unquote(secret) if colon else None
        seeds = []
        for part in hosts.split(","):
            parsed = urlsplit(f"//{part}")
            try:
                port = parsed.port or 6379
            except ValueError:
                port = -1
            if not parsed.hostname or port <= 0:
                raise ConfigError(
                    "HUB_REDIS_URL", url, "list seed nodes as host:port, comma-separated"
                )
            seeds.append((parsed.hostname, port))
        num_partitions = DEFAULT_PARTITIONS
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key != "partitions":
                raise ConfigError(
                    "HUB_REDIS_URL", url, f"unknown option {key!r}: a cluster URL takes partitions="
                )
            if not value.isdigit() or not 1 <= int(value) <= MAX_PARTITIONS:
                raise ConfigError(
                    "HUB_REDIS_URL", url, f"partitions must be a whole number 1..{MAX_PARTITIONS}"
                )
            num_partitions = int(value)
        return cls(tuple(seeds), username, password, tls, num_partitions)

    def describe(self) -> str:
        return ",".join(f"{h}:{p}" for h, p in self.seeds)


def parse_cluster_url(url: str) -> list[tuple[str, int]]:
    """The seed nodes of a cluster URL, in order."""
    return list(ClusterTarget.from_url(url).seeds)


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)
