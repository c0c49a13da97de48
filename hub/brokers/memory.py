"""The in-process broker: a single hub process, no Redis."""

from __future__ import annotations

import asyncio

from hub.brokers.base import BrokerEventHandler, BrokerStats

__all__ = ["MemoryBroker"]


class MemoryBroker:
    """Delivers publishes back to the same process, batched per event-loop turn."""

    def __init__(self) -> None:
        self.stats = BrokerStats()
        self._handler: BrokerEventHandler | None = None
        self._channels: set[str] = set()
        self._pending: list[tuple[str, bytes]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

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

    def publish(self, channel: str, payload: bytes) -> bool:
        if self._loop is None:
            self.stats.num_dropped += 1
            return False
        if not self._pending:
            # Flushed on the next loop turn: everything published in this turn is one batch.
            self._loop.call_soon(self._flush)
        self._pending.append((channel, payload))
        self.stats.num_published += 1
        return True

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if self._handler is not None:
            channels = self._channels
            self._handler.on_messages([m for m in batch if m[0] in channels])
