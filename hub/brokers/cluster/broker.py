"""The Redis Cluster broker: sharded pub/sub over a fixed set of partitions.

Every channel belongs to one of N partitions (``partitions.py``), and every partition runs
the standalone Redis broker's loops (``hub.brokers.redis``): a pipelined publisher, an
SSUBSCRIBE subscriber and a reader, and a probe through the partition's own slot. Their
connections are shares of one connection per master and role (``mux.py``): 3 per master
for the process, whatever N is (4 once presence is written: its writes never share the
publisher's). A partition follows its slot on its own: MOVED or a
server-sent ``sunsubscribe`` (a resharding, a failover) ends only that partition's shares,
which ask the topology where the slot lives now, attach there and resubscribe, and its
history channels repair what they missed. The other partitions never notice.

The partition is the unit that moves, so everything the standalone broker guarantees
(ordering within a partition, outage buffering, idempotent history resends, the deaf-node
probe) holds per partition unchanged; the shared connections keep its cost to that of one
connection per node (docs/benchmarks.md, Redis Cluster).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from hub.brokers.base import BrokerEventHandler, BrokerStats
from hub.brokers.cluster.mux import NodePool
from hub.brokers.cluster.partitions import ClusterTarget, PartitionMap
from hub.brokers.cluster.presence import ClusterPresence
from hub.brokers.cluster.topology import ClusterTopology
from hub.brokers.options import BrokerOptions
from hub.brokers.redis import RedisBroker
from hub.brokers.redis.entries import HeldBudget
from hub.brokers.redis.link import LogGate, RedisLink
from hub.brokers.resp import Endpoint
from hub.core.namespaces import ChannelOptions
from hub.core.sequence import HistoryPage

__all__ = ["ClusterBroker"]

logger = logging.getLogger(__name__)

_WATCH_S = 0.5
_UNREADY_WARN_S = 1.0


class _SlotLocator:
    """A partition's ``locate``: its slot's master, from a map newer than the last it used."""

    def __init__(self, topology: ClusterTopology, slot: int) -> None:
        self._topology = topology
        self._slot = slot
        self._seen = -1
        self._last: Endpoint | None = None

    async def __call__(self) -> Endpoint:
        # Asked again: the connection to the last node was lost (or never opened).
        endpoint, self._seen = await self._topology.owner(self._slot, self._seen, self._last)
        self._last = endpoint
        return endpoint


class ClusterBroker:
    def __init__(self, *, url: str, options: BrokerOptions | None = None) -> None:
        options = options or BrokerOptions()
        target = ClusterTarget.from_url(url)
        self.stats = BrokerStats()
        self.map = PartitionMap(prefix=options.prefix, num_partitions=target.num_partitions)
        self._topology = ClusterTopology(target)
        name = options.name or f"hub-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        options = replace(options, name=name)
        placeholder = Endpoint(host=target.describe())
        # One bound for the process's held messages, and one line per event and node.
        budget = HeldBudget(options.publish_buffer_messages, options.publish_buffer_bytes)
        gate = LogGate()
        self._pool = NodePool(name)
        self.partitions: list[RedisBroker] = []
        for i in range(target.num_partitions):
            slot = self.map.slot(i)
            locate = _SlotLocator(self._topology, slot)
            attach = partial(self._pool.attach, tag=self.map.tags[i].encode(), slot=slot)
            link = RedisLink(placeholder, f"{name}-p{i}", locate=locate, gate=gate, attach=attach)
            self.partitions.append(
                RedisBroker(
                    options=options,
                    link=link,
                    names=self.map.names(i),
                    stats=self.stats,
                    budget=budget,
                )
            )
        self._route: Callable[[str], int] = self.map.partition
        self._watching: asyncio.Task[None] | None = None

    def _of(self, channel: str) -> RedisBroker:
        return self.partitions[self._route(channel)]

    @property
    def is_ready(self) -> bool:
        return all(p.is_ready for p in self.partitions)

    async def start(self, handler: BrokerEventHandler) -> None:
        for partition in self.partitions:
            await partition.start(handler)
        self._watching = asyncio.create_task(self._watch())

    async def close(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
        await asyncio.gather(*(p.close() for p in self.partitions))
        self._pool.close()
        await self._topology.close()

    async def _watch(self) -> None:
        """Log the cluster as a whole (the partitions log at debug level): when every
        partition is ready, and which are not once that lasts past a blip (a slot move)."""
        was_ready, unready_since = False, None
        while True:
            await asyncio.sleep(_WATCH_S)
            unready = [i for i, p in enumerate(self.partitions) if not p.is_ready]
            if not unready:
                if not was_ready:
                    masters = {p.endpoint.describe() for p in self.partitions}
                    logger.info(
                        "redis cluster: all %d partitions ready on %d masters (%s)",
                        len(self.partitions),
                        len(masters),
                        ", ".join(sorted(masters)),
                    )
                was_ready, unready_since = True, None
                continue
            now = time.monotonic()
            if unready_since is None:
                unready_since = now
            if was_ready and now - unready_since >= _UNREADY_WARN_S:
                was_ready = False
                logger.warning(
                    "redis cluster: %d of %d partitions have no master connection (%s): "
                    "a master is down or a slot is moving; they reconnect on their own",
                    len(unready),
                    len(self.partitions),
                    ", ".join(sorted({self.partitions[i].endpoint.describe() for i in unready})),
                )

    def publish(self, channel: str, payload: bytes, history: ChannelOptions | None = None) -> bool:
        return self._of(channel).publish(channel, payload, history)

    async def subscribe(self, channel: str) -> None:
        await self._of(channel).subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self._of(channel).unsubscribe(channel)

    async def read_history(
        self, channel: str, *, since: int | None, limit: int, options: ChannelOptions
    ) -> HistoryPage:
        return await self._of(channel).read_history(
            channel, since=since, limit=limit, options=options
        )

    async def delete_history(self, channel: str) -> bool:
        return await self._of(channel).delete_history(channel)

    def presence(self) -> ClusterPresence:
        """A presence manager on the partitions' connections, each channel's in its own."""
        return ClusterPresence(self._route, [p.presence() for p in self.partitions])
