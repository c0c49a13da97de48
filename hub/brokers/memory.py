"""The memory engine: one process, no Redis. History channels keep their history here too,
and presence is a dict (``MemoryPresence``)."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Collection, Sequence

from hub.brokers.base import BrokerEventHandler, BrokerStats, presence_event
from hub.brokers.scripts import new_epoch
from hub.core.envelope import decode_envelope, encode_positioned
from hub.core.namespaces import ChannelOptions
from hub.core.sequence import HistoryPage

__all__ = ["MemoryBroker", "MemoryPresence"]


class _History:
    """One channel's history, as the Redis scripts keep it: epoch, top offset, last messages."""

    __slots__ = ("epoch", "last_publish", "messages", "top")

    def __init__(self, size: int) -> None:
        self.epoch = new_epoch().decode()
        self.top = 0
        self.messages: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=size)
        self.last_publish = time.monotonic()

    def expire(self, options: ChannelOptions, now: float) -> bool:
        """Drop what outlived its TTL; True when the meta is gone too (a new epoch follows)."""
        idle = now - self.last_publish
        if idle > options.history_ttl_s:
            self.messages.clear()
        return idle > options.history_meta_ttl_s


class MemoryBroker:
    """Delivers publishes back to the same process, batched per event-loop turn."""

    def __init__(self) -> None:
        self.stats = BrokerStats()
        self._handler: BrokerEventHandler | None = None
        self._channels: set[str] = set()
        self._pending: list[tuple[str, bytes]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._histories: dict[str, _History] = {}

    @property
    def is_ready(self) -> bool:
        return self._handler is not None

    async def start(self, handler: BrokerEventHandler) -> None:
        self._handler = handler
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        self._handler = None

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    def publish(self, channel: str, payload: bytes, history: ChannelOptions | None = None) -> bool:
        if self._loop is None:
            self.stats.num_dropped += 1
            return False
        if history is not None and history.has_history:
            h = self._history(channel, history)
            h.top += 1
            h.messages.append((h.top, payload))
            h.last_publish = time.monotonic()
            payload = encode_positioned(payload, h.top, h.epoch)
        if not self._pending:
            # Flushed on the next loop turn: everything published in this turn is one batch.
            self._loop.call_soon(self._flush)
        self._pending.append((channel, payload))
        self.stats.num_published += 1
        return True

    def _history(self, channel: str, options: ChannelOptions) -> _History:
        h = self._histories.get(channel)
        if h is None or h.expire(options, time.monotonic()):
            h = self._histories[channel] = _History(options.history_size)
        return h

    async def read_history(
        self, channel: str, *, since: int | None, limit: int, options: ChannelOptions
    ) -> HistoryPage:
        h = self._history(channel, options)
        if limit <= 0:
            entries: list[tuple[int, bytes]] = []
        elif since is None:
            entries = list(h.messages)[-limit:]
        else:
            entries = [e for e in h.messages if e[0] > since][:limit]
        messages = []
        for offset, payload in entries:
            m = decode_envelope(payload)
            m.offset, m.epoch = offset, h.epoch
            messages.append(m)
        return HistoryPage(h.epoch, h.top, messages)

    async def delete_history(self, channel: str) -> bool:
        return self._histories.pop(channel, None) is not None

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if self._handler is not None:
            channels = self._channels
            self._handler.on_messages([m for m in batch if m[0] in channels])


class MemoryPresence:
    """Presence within one process: channel → {client: user}. Join and leave events go
    through ``publish`` (the memory broker's: it holds nothing, so it has no budget to
    share)."""

    def __init__(self, publish: Callable[[str, bytes], bool] | None = None) -> None:
        self._members: dict[str, dict[str, str | None]] = {}
        self._publish = publish

    def add(
        self, channel: str, client: str, user: str | None, ttl_s: float, *, announce: bool = False
    ) -> None:
        members = self._members.setdefault(channel, {})
        members[client] = user
        if announce and self._publish is not None:
            self._publish(channel, presence_event(True, client, user))

    def remove(
        self, channel: str, client: str, user: str | None = None, *, announce: bool = False
    ) -> None:
        members = self._members.get(channel)
        if members is not None:
            members.pop(client, None)
            if not members:
                del self._members[channel]
        if announce and self._publish is not None:
            self._publish(channel, presence_event(False, client, user))

    def heartbeat(self, channels: Sequence[str], ttl_s: float) -> None:
        pass  # one process: its clients cannot outlive it

    def take_dropped(self) -> Collection[str]:
        return ()  # nothing is queued

    async def read(self, channel: str) -> list[tuple[str, str | None]]:
        return list(self._members.get(channel, {}).items())
