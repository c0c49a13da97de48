"""Where each slot of a Redis Cluster lives, as redis-py's cluster client discovers it
(``CLUSTER SLOTS`` through any reachable node, the nodes it learns becoming seeds too).

Each partition's connections ask :meth:`ClusterTopology.owner` before every connect. They
pass the version of the map that led them to the node they lost, and get a map refreshed
since: a partition never reconnects twice to a node that the map it already used names. The
refreshes of many partitions that lose their node together (a failover) are one.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Unpack

from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.exceptions import RedisClusterException, RedisError

from hub.brokers.cluster.partitions import ClusterTarget
from hub.brokers.redis.client_options import AsyncOptions
from hub.brokers.resp import Endpoint

__all__ = ["ClusterTopology", "cluster_client"]

_TIMEOUT_S = 2.0


def cluster_client(target: ClusterTarget, **kwargs: Unpack[AsyncOptions]) -> ClusterClient:
    """redis-py's asyncio cluster client for the target (also serves the HTTP API)."""
    return ClusterClient(
        startup_nodes=[ClusterNode(host, port) for host, port in target.seeds],
        username=target.username,
        password=target.password,
        ssl=target.tls,
        require_full_coverage=False,  # a slot whose master is down does not stop the rest
        socket_timeout=kwargs.get("socket_timeout", _TIMEOUT_S),
        socket_connect_timeout=kwargs.get("socket_connect_timeout", _TIMEOUT_S),
        retry=kwargs.get("retry"),
    )


class ClusterTopology:
    def __init__(self, target: ClusterTarget) -> None:
        self.target = target
        self._client = cluster_client(target)
        self._endpoint = Endpoint(
            username=target.username, password=target.password, tls=target.tls
        )
        self._version = 0
        self._refreshing: asyncio.Task[None] | None = None

    async def owner(
        self, slot: int, seen: int, lost: Endpoint | None = None
    ) -> tuple[Endpoint, int]:
        """The master of ``slot``, from a map newer than version ``seen`` (-1: any), and the
        map's version. Raises OSError when no node answers or no master serves the slot.

        ``lost`` is the node the caller was on: a map that is newer than ``seen`` but was
        read by another partition before the change that lost it (a master whose host went
        silent is still a master until its replica is promoted) names it again, and a
        connect to a silent host costs a whole connect deadline. So a map that still names
        ``lost`` is read once more, unless this call just read it; and a read asks ``lost``
        last, not first (it may be silent)."""
        refreshed = self._version <= seen or self._version == 0
        if refreshed:
            await self._refresh(lost)
        endpoint = self._owner(slot)
        if lost is not None and endpoint == lost and not refreshed:
            await self._refresh(lost)
            endpoint = self._owner(slot)
        return endpoint, self._version

    def _owner(self, slot: int) -> Endpoint:
        try:
            node = self._client.nodes_manager.get_node_from_slot(slot)
        except (RedisClusterException, RedisError) as exc:
            raise OSError(f"no master serves slot {slot} now: {exc}") from None
        return replace(self._endpoint, host=node.host, port=int(node.port))

    async def _refresh(self, lost: Endpoint | None = None) -> None:
        if self._refreshing is None:
            self._refreshing = asyncio.create_task(self._fetch(lost))
            self._refreshing.add_done_callback(self._refreshed)
        await asyncio.shield(self._refreshing)

    def _refreshed(self, task: asyncio.Task[None]) -> None:
        if self._refreshing is task:
            self._refreshing = None

    async def _fetch(self, lost: Endpoint | None) -> None:
        try:
            if self._version == 0:
                await self._client.initialize()
            else:
                # redis-py names a node host:port; it asks that one after all the others.
                last = f"{lost.host}:{lost.port}" if lost is not None else None
                await self._client.nodes_manager.initialize(last_failed_node_name=last)
        except (RedisClusterException, RedisError) as exc:
            raise OSError(
                f"cannot read the slot map from {self.target.describe()}: {exc}"
            ) from None
        self._version += 1

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        try:
            await self._client.aclose()
        except (RedisError, OSError):
            pass
