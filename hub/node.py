"""Orchestration: local registry + broker. Subscribes the broker on a channel's first local
client, unsubscribes a little after its last one leaves, and fans broker batches out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from hub.brokers.base import Broker
from hub.core.envelope import TEXT, decode_envelope, encode_envelope
from hub.core.errors import CloseCode
from hub.core.fanout import Subscriber, deliver
from hub.core.policy import BUFFER_FULL, PublishPolicy, Refusal
from hub.core.protocol import RATE_LIMITED
from hub.core.registry import Registry

__all__ = ["Client", "Node"]

logger = logging.getLogger(__name__)


class Client(Subscriber, Protocol):
    """A connection as the node sees it: a fan-out subscriber that knows its channels."""

    channels: set[str]

    def disconnect(self, code: int, reason: str) -> None:
        """Start closing the connection with ``code``; must not block."""
        ...


class _BrokerChannel:
    """One channel's subscription at the broker, from the first SUBSCRIBE to the UNSUBSCRIBE.

    The record lives while any of its fields is set or the channel has a local client.
    """

    __slots__ = ("expiry", "is_subscribed", "subscribing", "unsubscribing")

    def __init__(self) -> None:
        #: The broker delivers the channel's messages to this process.
        self.is_subscribed = False
        #: Set while a SUBSCRIBE is in flight; concurrent joins wait on it.
        self.subscribing: asyncio.Future[None] | None = None
        #: Set while an UNSUBSCRIBE is in flight; a re-join waits for it, then subscribes.
        self.unsubscribing: asyncio.Task[None] | None = None
        #: The delayed UNSUBSCRIBE of a channel with no local client.
        self.expiry: asyncio.TimerHandle | None = None

    @property
    def is_idle(self) -> bool:
        return not self.is_subscribed and self.subscribing is None and self.unsubscribing is None


class Node:
    """One process's view of the hub."""

    def __init__(
        self,
        *,
        broker: Broker,
        max_buffered_bytes: int,
        unsubscribe_delay_s: float = 2.0,
        on_fanout: Callable[[float], None] | None = None,
    ) -> None:
        self.broker = broker
        self._max_buffered_bytes = max_buffered_bytes
        self._unsubscribe_delay_s = unsubscribe_delay_s
        self._on_fanout = on_fanout
        self._registry: Registry[Client] = Registry()
        self._broker_channels: dict[str, _BrokerChannel] = {}
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
        for state in self._broker_channels.values():
            if state.expiry is not None:
                state.expiry.cancel()
                state.expiry = None
        await self.broker.close()

    @property
    def is_ready(self) -> bool:
        return self.broker.is_ready

    # Subscriptions

    async def prepare(self, channel: str) -> None:
        """Subscribe the broker to ``channel`` ahead of a client joining it.

        The server calls this during the WebSocket handshake, so that by the time a client
        sees its connection open, messages on its channel already reach this process. If no
        client joins, the subscription expires like that of a channel whose clients left.
        """
        await self._ensure_subscribed(channel)
        state = self._broker_channels[channel]
        if channel not in self._registry and state.expiry is None:
            self._schedule_expiry(channel, state)

    async def join(self, channel: str, client: Client) -> None:
        """Add ``client`` to ``channel``; returns once the channel's messages will reach it."""
        self._registry.add(channel, client)
        client.channels.add(channel)
        state = self._state(channel)
        if state.expiry is not None:
            state.expiry.cancel()
            state.expiry = None
        try:
            await self._ensure_subscribed(channel)
        except BaseException:
            self.leave(channel, client)
            raise

    def leave(self, channel: str, client: Client) -> None:
        """Remove ``client`` from ``channel``; the broker is unsubscribed after a delay."""
        client.channels.discard(channel)
        if self._registry.remove(channel, client):
            state = self._broker_channels[channel]
            if state.is_idle:
                del self._broker_channels[channel]  # its subscribe failed: nothing to undo
            else:
                self._schedule_expiry(channel, state)

    def leave_all(self, client: Client) -> None:
        for channel in list(client.channels):
            self.leave(channel, client)

    def _state(self, channel: str) -> _BrokerChannel:
        state = self._broker_channels.get(channel)
        if state is None:
            state = self._broker_channels[channel] = _BrokerChannel()
        return state

    async def _ensure_subscribed(self, channel: str) -> None:
        while True:
            # Looked up afresh each time: a failed subscribe may have dropped the record.
            state = self._state(channel)
            if state.is_subscribed:
                return
            if state.subscribing is not None:
                await asyncio.shield(state.subscribing)
                continue  # subscribed, or failed: then this caller tries for itself
            if state.unsubscribing is not None:
                await asyncio.shield(state.unsubscribing)
                continue
            done = state.subscribing = asyncio.get_running_loop().create_future()
            try:
                await self.broker.subscribe(channel)
                state.is_subscribed = True
            finally:
                state.subscribing = None
                done.set_result(None)
                if state.is_idle and channel not in self._registry and state.expiry is None:
                    del self._broker_channels[channel]

    def _schedule_expiry(self, channel: str, state: _BrokerChannel) -> None:
        if state.expiry is not None:
            state.expiry.cancel()
        loop = asyncio.get_running_loop()
        state.expiry = loop.call_later(self._unsubscribe_delay_s, self._expire, channel)

    def _expire(self, channel: str) -> None:
        state = self._broker_channels[channel]
        state.expiry = None
        if channel in self._registry:
            return
        if state.is_subscribed:
            state.is_subscribed = False
            state.unsubscribing = asyncio.create_task(self._unsubscribe(channel, state))
        elif state.is_idle:
            del self._broker_channels[channel]

    async def _unsubscribe(self, channel: str, state: _BrokerChannel) -> None:
        try:
            await self.broker.unsubscribe(channel)
        except Exception:
            logger.exception("unsubscribing %s failed", channel)
        finally:
            state.unsubscribing = None
            if state.is_idle and channel not in self._registry and state.expiry is None:
                del self._broker_channels[channel]

    def is_subscribed(self, channel: str) -> bool:
        """Whether the broker delivers ``channel`` to this process now."""
        state = self._broker_channels.get(channel)
        return state is not None and state.is_subscribed

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
        """Send a message to the broker; it comes back to us (and every other process)
        through the broker, which is the one delivery path."""
        self.num_received += 1
        # A refusal is counted by the broker (stats.num_dropped), which knows why.
        return self.broker.publish(channel, encode_envelope(payload, kind))

    def publish_from(
        self, policy: PublishPolicy, channel: str, payload: bytes, kind: int = TEXT
    ) -> Refusal | None:
        """Publish a client's message if its policy allows; None, or why it was refused."""
        refusal = policy.check(channel, time.monotonic())
        if refusal is not None:
            if refusal.code == RATE_LIMITED:
                self.num_rate_limited += 1
            return refusal
        return None if self.publish(channel, payload, kind) else BUFFER_FULL

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
        limit = self._max_buffered_bytes
        num_delivered = 0
        for channel, payloads in groups.items():
            subs = registry.subscribers(channel)
            if not subs:
                continue
            messages = [decode_envelope(p) for p in payloads]
            num_delivered += deliver(subs, channel, messages, limit, slow)
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
