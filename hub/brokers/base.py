"""The broker seam: what the node needs of a message broker, and how a broker calls back.

Delivery semantics, for every broker:

* A message published by this process reaches every process subscribed to its channel at
  that moment, this process included, at most once. Pub/sub keeps no history: a process that
  is not subscribed when a message passes does not get it later.
* Messages published by one process arrive at each subscriber process in publish order.
* ``publish`` never blocks. While the broker is unreachable, messages are held in a bounded
  buffer and published in order after the reconnect; beyond the bound they are dropped and
  counted in ``stats``.
* After a reconnect the broker resubscribes every channel that still has local subscribers,
  and then tells the handler (``on_resubscribed``): messages may have been missed meanwhile.
* History channels (``publish`` with ``history``) are published through one atomic step that
  assigns the next offset, appends to the channel's history and publishes the message with
  its offset and epoch (``hub.core.envelope``). ``read_history`` reads that history.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from hub.core.envelope import encode_event
from hub.core.errors import BrokerUnavailable
from hub.core.jsontext import dump_json
from hub.core.namespaces import ChannelOptions
from hub.core.sequence import HistoryPage

__all__ = [
    "Broker",
    "BrokerEventHandler",
    "BrokerStats",
    "BrokerUnavailable",
    "PresenceManager",
    "presence_event",
]


class BrokerEventHandler(Protocol):
    def on_messages(self, batch: Sequence[tuple[str, bytes]]) -> None:
        """Messages that arrived together, in arrival order, as (channel, payload) pairs.

        Called synchronously from the broker's reader with everything already received, so
        the node can coalesce writes; it must not block.
        """
        ...

    def on_resubscribed(self, channels: Collection[str]) -> None:
        """The subscription of ``channels`` was lost and is back: messages published on them
        meanwhile were missed. (All of the process's channels, unless the broker is
        partitioned: on Redis Cluster, those of one partition.)"""
        ...


@dataclass
class BrokerStats:
    """Counters a broker keeps; the node exports them as metrics."""

    num_published: int = 0
    num_publish_errors: int = 0
    num_dropped: int = 0
    num_reconnects: int = 0
    num_gaps: int = 0
    num_probe_failures: int = 0
    #: Presence writes and join/leave events dropped because the presence queue was full.
    num_presence_dropped: int = 0


class Broker(Protocol):
    stats: BrokerStats

    @property
    def is_ready(self) -> bool:
        """Whether messages flow both ways now (connected, subscribed, and not deaf) and
        history and presence can be read."""
        ...

    async def start(self, handler: BrokerEventHandler) -> None:
        """Begin delivering to ``handler``; returns without waiting for the broker to be up."""
        ...

    async def close(self) -> None: ...

    async def subscribe(self, channel: str) -> None:
        """Subscribe this process; returns once messages on ``channel`` will be received.

        While the broker is unreachable it returns at once: the channel is subscribed as
        soon as the broker is back.
        """
        ...

    async def unsubscribe(self, channel: str) -> None: ...

    def publish(self, channel: str, payload: bytes, history: ChannelOptions | None = None) -> bool:
        """Queue ``payload`` for ``channel``; False when the bounded buffer dropped it.

        With ``history``, the message is kept in the channel's history and gets its offset.
        """
        ...

    async def read_history(
        self, channel: str, *, since: int | None, limit: int, options: ChannelOptions
    ) -> HistoryPage:
        """The channel's epoch and top offset, and up to ``limit`` messages with offsets
        above ``since`` (None: the last ``limit``), oldest first.

        A channel with no history yet gets its epoch here; on Redis, its meta then lives
        an hour after the last such read until the first publish (``hub.brokers.scripts``).
        Raises BrokerUnavailable.
        """
        ...

    async def delete_history(self, channel: str) -> bool:
        """Delete the channel's history, its epoch and top offset included: the next publish
        starts a new epoch at offset 1. True when there was one. Raises BrokerUnavailable."""
        ...


class PresenceManager(Protocol):
    """Presence: who is subscribed to a channel, cluster-wide. Each engine has its own,
    beside its broker (``hub.brokers.create_engines`` makes the pair).

    Its writes and its join/leave events never take from the broker's publish buffer: a
    subscribe storm must not cost anyone's message. They may be coalesced: a join and a
    leave of one client on one channel that meet before they are written cancel out.
    """

    def add(
        self, channel: str, client: str, user: str | None, ttl_s: float, *, announce: bool = False
    ) -> None:
        """Record that ``client`` (of ``user``) is subscribed to ``channel``, from this
        process; with ``announce``, publish its join event to the channel too."""
        ...

    def remove(
        self, channel: str, client: str, user: str | None = None, *, announce: bool = False
    ) -> None:
        """``client`` (of ``user``) left ``channel``; with ``announce``, publish its leave
        event."""
        ...

    def heartbeat(self, channels: Sequence[str], ttl_s: float) -> None:
        """This process still holds its clients of ``channels`` (one write per channel,
        whatever its number of members); without it they expire after ``ttl_s``."""
        ...

    async def read(self, channel: str) -> list[tuple[str, str | None]]:
        """(client, user) of everyone subscribed, less those of processes that stopped
        heartbeating. Raises BrokerUnavailable."""
        ...

    def take_dropped(self) -> Collection[str]:
        """The channels whose writes were dropped (a full queue) since the last call: the
        node writes their local members again."""
        ...


def presence_event(is_join: bool, client: str, user: str | None) -> bytes:
    """The envelope of a join or leave event, as every engine publishes it."""
    return encode_event(is_join, dump_json({"client": client, "user": user}))
