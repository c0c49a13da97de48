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
from urllib.parse import urlsplit

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from hub.core.errors import ConfigError

__all__ = ["CLUSTER_SCHEME", "PartitionMap", "balanced_tags", "parse_cluster_url"]

CLUSTER_SCHEME = "redis+cluster://"

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
    """The names a channel uses in Redis Cluster, and the partition (slot) they live in."""

    prefix: str = "hub:"
    num_partitions: int = 32
    tags: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", balanced_tags(self.num_partitions))

    def partition(self, channel: str) -> int:
        """A stable partition for the channel, the same in every process (CRC32, not hash())."""
        return zlib.crc32(channel.encode()) % self.num_partitions

    def slot(self, partition: int) -> int:
        """The hash slot of every name in the partition."""
        return key_slot(self.tags[partition].encode())

    def _base(self, channel: str) -> str:
        return f"{self.prefix}{{{self.tags[self.partition(channel)]}}}:{channel}"

    def pubsub_channel(self, channel: str) -> bytes:
        """The sharded pub/sub channel (SPUBLISH/SSUBSCRIBE) of the channel."""
        return self._base(channel).encode()

    def history_keys(self, channel: str) -> tuple[bytes, bytes]:
        """The stream and meta keys of the history script, in the pub/sub channel's slot."""
        base = self._base(channel)
        return f"{base}:stream".encode(), f"{base}:meta".encode()

    def presence_key(self, channel: str) -> bytes:
        """The presence hash of the channel, in the pub/sub channel's slot."""
        return f"{self._base(channel)}:presence".encode()


def parse_cluster_url(url: str) -> list[tuple[str, int]]:
    """``redis+cluster://host1:7001,host2:7002`` → the seed nodes, in order.

    redis-py's ``from_url`` takes one host, so the comma-separated seed list is split here.
    """
    if not url.startswith(CLUSTER_SCHEME):
        raise ConfigError("HUB_REDIS_URL", url, f"a cluster URL starts with {CLUSTER_SCHEME}")
    netloc = url[len(CLUSTER_SCHEME) :].split("/", 1)[0]
    seeds = []
    for part in netloc.split(","):
        parsed = urlsplit(f"//{part}")
        try:
            port = parsed.port or 6379
        except ValueError:
            port = -1
        if not parsed.hostname or port <= 0:
            raise ConfigError("HUB_REDIS_URL", url, "list seed nodes as host:port, comma-separated")
        seeds.append((parsed.hostname, port))
    return seeds
