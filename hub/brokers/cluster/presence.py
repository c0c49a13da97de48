"""Presence on Redis Cluster: each channel's in its partition (whose keys share the slot of
its sharded channel), through that partition's own presence queue and connection (a share
of one connection per master), never through its publish pipeline."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from hub.brokers.redis.presence import RedisPresence

__all__ = ["ClusterPresence"]


class ClusterPresence:
    def __init__(self, route: Callable[[str], int], partitions: Sequence[RedisPresence]) -> None:
        self._route = route
        self._partitions = partitions

    def _of(self, channel: str) -> RedisPresence:
        return self._partitions[self._route(channel)]

    def add(
        self, channel: str, client: str, user: str | None, ttl_s: float, *, announce: bool = False
    ) -> None:
        self._of(channel).add(channel, client, user, ttl_s, announce=announce)

    def remove(
        self, channel: str, client: str, user: str | None = None, *, announce: bool = False
    ) -> None:
        self._of(channel).remove(channel, client, user, announce=announce)

    def heartbeat(self, channels: Sequence[str], ttl_s: float) -> None:
        """One heartbeat per partition, of its channels."""
        groups: dict[int, list[str]] = {}
        for channel in channels:
            groups.setdefault(self._route(channel), []).append(channel)
        for index, group in groups.items():
            self._partitions[index].heartbeat(group, ttl_s)

    async def read(self, channel: str) -> list[tuple[str, str | None]]:
        return await self._of(channel).read(channel)

    def take_dropped(self) -> Collection[str]:
        return [c for partition in self._partitions for c in partition.take_dropped()]
