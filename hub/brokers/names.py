"""The Redis names of a channel: its pub/sub channel, its history keys and its presence keys.

A standalone Redis (or a Sentinel-managed one) uses flat names: ``<prefix><channel>`` for
pub/sub, and keys tagged with the channel (``<prefix>{<channel>}:stream``), so that a
channel's keys would share a slot anywhere. Redis Cluster uses the partition map's names
instead (``hub.brokers.cluster.partitions``), where every name of a channel carries its
partition's hash tag, and pub/sub is sharded (SPUBLISH, SSUBSCRIBE).

The publisher, subscriber and reader take a ``Names`` and never build a name themselves, so
the same lean data path serves both layouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["FlatNames", "Names"]


class Names(Protocol):
    @property
    def sharded(self) -> bool:
        """Sharded pub/sub (SPUBLISH, SSUBSCRIBE, ``smessage``), or classic."""
        ...

    def pubsub(self, channel: str) -> bytes:
        """The pub/sub channel that carries ``channel``'s messages."""
        ...

    def probe(self, name: bytes) -> bytes:
        """The pub/sub channel of a process's probe (outside the client namespace: '$' is
        not a valid channel character)."""
        ...

    def history_keys(self, channel: str) -> tuple[bytes, bytes]:
        """(stream key, meta key); both hash to the pub/sub channel's slot."""
        ...

    def presence_keys(self, channel: str) -> tuple[bytes, bytes]:
        """(clients hash, processes zset), in the same slot."""
        ...


@dataclass(frozen=True)
class FlatNames:
    """The names on a standalone Redis: classic pub/sub, keys tagged with the channel."""

    prefix: bytes = b"hub:"
    sharded: bool = False

    def pubsub(self, channel: str) -> bytes:
        return self.prefix + channel.encode()

    def probe(self, name: bytes) -> bytes:
        return self.prefix + b"$probe:" + name

    def _tagged(self, channel: str) -> bytes:
        return self.prefix + b"{" + channel.encode() + b"}"

    def history_keys(self, channel: str) -> tuple[bytes, bytes]:
        tagged = self._tagged(channel)
        return tagged + b":stream", tagged + b":meta"

    def presence_keys(self, channel: str) -> tuple[bytes, bytes]:
        tagged = self._tagged(channel)
        return tagged + b":presence", tagged + b":presence:processes"
