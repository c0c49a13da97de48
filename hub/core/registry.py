"""Local state only: which of this process's subscribers listen on which channel.

``add`` and ``remove`` report "first subscriber" and "channel empty" so that the node can
(un)subscribe the broker; the registry itself never talks to a broker.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["Registry"]

S = TypeVar("S")


class Registry(Generic[S]):
    """channel → the set of local subscribers, in insertion order."""

    __slots__ = ("_channels", "num_subscriptions")

    def __init__(self) -> None:
        # A dict used as an ordered set: iteration during fan-out is a plain dict walk.
        self._channels: dict[str, dict[S, None]] = {}
        self.num_subscriptions = 0

    def add(self, channel: str, subscriber: S) -> bool:
        """Subscribe; return ``is_first``: whether the channel had no local subscriber."""
        subs = self._channels.get(channel)
        if subs is None:
            self._channels[channel] = {subscriber: None}
            self.num_subscriptions += 1
            return True
        if subscriber not in subs:
            subs[subscriber] = None
            self.num_subscriptions += 1
        return False

    def remove(self, channel: str, subscriber: S) -> bool:
        """Unsubscribe; return ``is_empty``: whether that was the channel's last subscriber.

        Removing a subscriber that is not there is a no-op that returns False.
        """
        subs = self._channels.get(channel)
        if subs is None or subscriber not in subs:
            return False
        del subs[subscriber]
        self.num_subscriptions -= 1
        if subs:
            return False
        del self._channels[channel]
        return True

    def subscribers(self, channel: str) -> dict[S, None] | None:
        """The live subscriber set of ``channel`` (do not mutate it), or None."""
        return self._channels.get(channel)

    def __contains__(self, channel: object) -> bool:
        return channel in self._channels

    def __iter__(self) -> Iterator[str]:
        return iter(self._channels)

    def __len__(self) -> int:
        return len(self._channels)

    def items(self) -> Iterator[tuple[str, int]]:
        """(channel, number of local subscribers) pairs."""
        for channel, subs in self._channels.items():
            yield channel, len(subs)
