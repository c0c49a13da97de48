"""Orchestration: local registry + broker. Subscribes the broker on a channel's first local
client, unsubscribes a little after its last one leaves, and fans broker batches out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from hub.brokers.base import Broker
from hub.core.errors import CloseCode
from hub.core.fanout import Encoder, Subscriber, deliver
from hub.core.protocol import TEXT, decode_envelope, encode_envelope
from hub.core.registry import Registry

__all__ = ["Client", "Node"]

logger = logging.getLogger(__name__)


class Client(Subscriber, Protocol):
    """A connection as the node sees it: a fan-out subscriber that knows its channels."""

    channels: set[str]

    def disconnect(self, code: int, reason: str) -> None:
        """Start closing the connection with ``code``; must not block."""
        ...


class Node:
    """One process's view of the hub."""

    def __init__(
        self,
        *,
        broker: Broker,
        encoders: tuple[Encoder, ...],
        max_buffered_bytes: int,
        unsubscribe_delay_s: float = 2.0,
        on_fanout: Callable[[float], None] | None = None,
    ) -> None:
        self.broker = broker
        self._encoders = encoders
        self._max_buffered_bytes = max_buffered_bytes
        self._unsubscribe_delay_s = unsubscribe_delay_s
        self._on_fanout = on_fanout
        self._registry: Registry[Client] = Registry()
        # Channels subscribed at the broker; a channel stays a little after its last client.
        self._broker_channels: set[str] = set()
        self._subscribing: dict[str, asyncio.Future[None]] = {}
        self._unsubscribing: dict[str, asyncio.Task[None]] = {}
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        # Plain counters on the hot path; metrics read them at scrape time.
        self.num_received = 0
        self.num_delivered = 0
        self.num_slow_consumers = 0
        #: Client publishes refused by the per-connection rate limit (both modes).
        self.num_rate_limited = 0

    # Lifecycle

    async def start(self) -> None:
        await self.broker.start(self)

    async def close(self) -> None:
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
        await self.broker.close()

    @property
    def is_ready(self) -> bool:
        return self.broker.is_ready

    # Subscriptions

    async def prepare(self, channel: str) -> None:
        """Subscribe the broker to ``channel`` ahead of a client joining it.

        The server calls this during the WebSocket handshake, so that by the time a client
        sees its connection open, messages on its channel already reach this process.
        """
        await self._ensure_subscribed(channel)
        if channel not in self._registry and channel not in self._expiry:
            self._schedule_expiry(channel)

    async def join(self, channel: str, client: Client) -> None:
        """Add ``client`` to ``channel``; returns once the channel's messages will reach it."""
        self._registry.add(channel, client)
        client.channels.add(channel)
        expiry = self._expiry.pop(channel, None)
        if expiry is not None:
            expiry.cancel()
        try:
            await self._ensure_subscribed(channel)
        except BaseException:
            self._registry.remove(channel, client)
            client.channels.discard(channel)
            raise

    async def _ensure_subscribed(self, channel: str) -> None:
        pending = self._subscribing.get(channel)
        if pending is not None:
            await asyncio.shield(pending)
            return
        if channel in self._broker_channels:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._subscribing[channel] = done
        try:
            unsubscribing = self._unsubscribing.get(channel)
            if unsubscribing is not None:
                await unsubscribing
            await self.broker.subscribe(channel)
            self._broker_channels.add(channel)
        finally:
            del self._subscribing[channel]
            done.set_result(None)

    def leave(self, channel: str, client: Client) -> None:
        """Remove ``client`` from ``channel``; the broker is unsubscribed after a delay."""
        client.channels.discard(channel)
        if self._registry.remove(channel, client):
            self._schedule_expiry(channel)

    def _schedule_expiry(self, channel: str) -> None:
        loop = asyncio.get_running_loop()
        self._expiry[channel] = loop.call_later(self._unsubscribe_delay_s, self._expire, channel)

    def leave_all(self, client: Client) -> None:
        for channel in list(client.channels):
            self.leave(channel, client)

    def _expire(self, channel: str) -> None:
        del self._expiry[channel]
        if channel not in self._registry and channel in self._broker_channels:
            self._broker_channels.discard(channel)
            task = asyncio.create_task(self._unsubscribe(channel))
            self._unsubscribing[channel] = task

    async def _unsubscribe(self, channel: str) -> None:
        try:
            await self.broker.unsubscribe(channel)
        except Exception:
            logger.exception("unsubscribing %s failed", channel)
        finally:
            del self._unsubscribing[channel]

    def channels(self) -> Iterator[tuple[str, int]]:
        """(channel, local subscriber count) for every live channel of this process."""
        return self._registry.items()

    @property
    def num_channels(self) -> int:
        return len(self._registry)

    @property
    def num_subscriptions(self) -> int:
        return self._registry.num_subscriptions

    # Messages

    def publish(self, channel: str, payload: bytes, kind: int = TEXT) -> bool:
        """Send a client's message to the broker; it comes back to us (and every other
        process) through the broker, which is the one delivery path."""
        self.num_received += 1
        # A refusal is counted by the broker (stats.num_dropped), which knows why.
        return self.broker.publish(channel, encode_envelope(payload, kind))

    def on_messages(self, batch: Sequence[tuple[str, bytes]]) -> None:
        started = time.perf_counter()
        groups: dict[str, list[bytes]] = {}
        for channel, data in batch:
            group = groups.get(channel)
            if group is None:
                groups[channel] = [data]
            else:
                group.append(data)
        slow: list[Subscriber] = []
        registry = self._registry
        encoders = self._encoders
        limit = self._max_buffered_bytes
        num_delivered = 0
        for channel, payloads in groups.items():
            subs = registry.subscribers(channel)
            if not subs:
                continue
            messages = [decode_envelope(p) for p in payloads]
            num_delivered += deliver(subs, channel, messages, encoders, limit, slow)
        self.num_delivered += num_delivered
        for sub in slow:
            self._evict_slow(sub)  # type: ignore[arg-type]
        if self._on_fanout is not None:
            self._on_fanout(time.perf_counter() - started)

    def _evict_slow(self, client: Client) -> None:
        if not client.channels:
            return  # already evicted by an earlier channel in this batch
        self.num_slow_consumers += 1
        logger.warning(
            "closing a slow consumer (unsent bytes passed %d; %d evicted so far)",
            self._max_buffered_bytes,
            self.num_slow_consumers,
        )
        self.leave_all(client)
        client.disconnect(CloseCode.SLOW_CONSUMER, "slow consumer")
