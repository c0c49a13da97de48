"""The node: local registry + broker. Subscribes the broker on a channel's first local
client, unsubscribes a little after its last one leaves, and fans broker batches out."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Sequence

from hub.brokers.base import Broker, PresenceManager
from hub.core.envelope import EVENT, GAP, TEXT, Message, decode_envelope, encode_envelope
from hub.core.errors import CloseCode
from hub.core.fanout import Subscriber, deliver
from hub.core.namespaces import ChannelOptions, ChannelRules
from hub.core.policy import BUFFER_FULL, PublishPolicy, Refusal
from hub.core.protocol import RATE_LIMITED
from hub.core.registry import Registry
from hub.node.history import NodeHistory
from hub.node.presence import NodePresence
from hub.node.state import BrokerChannel, Client

__all__ = ["Node"]

logger = logging.getLogger(__name__)


class Node(NodeHistory, NodePresence):
    """One process's view of the hub."""

    def __init__(
        self,
        *,
        broker: Broker,
        presence: PresenceManager | None = None,
        max_buffered_bytes: int,
        unsubscribe_delay_s: float = 2.0,
        rules: ChannelRules | None = None,
        recovery_max_messages: int = 1000,
        presence_ttl_s: float = 60.0,
        on_fanout: Callable[[float], None] | None = None,
    ) -> None:
        self.broker = broker
        #: This process's name in presence lists: client ids are ``<name>.<number>``.
        self.name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.presence_ttl_s = presence_ttl_s
        self._listeners: dict[str, dict[Client, None]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._num_clients = 0
        self.rules = rules or ChannelRules((), ChannelOptions())
        if presence is None and self.rules.any_presence:
            raise ValueError("channels keep presence: Node needs presence=")
        self.presence = presence
        self.recovery_max_messages = recovery_max_messages
        self._max_buffered_bytes = max_buffered_bytes
        self._unsubscribe_delay_s = unsubscribe_delay_s
        self._on_fanout = on_fanout
        self._registry: Registry[Client] = Registry()
        self._broker_channels: dict[str, BrokerChannel] = {}
        # Plain counters on the hot path; metrics read them at scrape time.
        self.num_received = 0
        self.num_delivered = 0
        self.num_slow_consumers = 0
        #: Client publishes refused by the per-connection rate limit (both modes).
        self.num_rate_limited = 0
        #: History channels' messages that pub/sub missed and the history gave back.
        self.num_repaired = 0
        #: Gaps that could not be repaired (trimmed, expired, or a lost epoch): each reached
        #: the channel's hub.v1 subscribers as a gap frame.
        self.num_unrepaired_gaps = 0
        self._repairs: set[asyncio.Task[None]] = set()

    # Lifecycle

    async def start(self) -> None:
        await self.broker.start(self)
        if self.rules.any_presence:
            self._heartbeat = asyncio.create_task(self._run_presence_heartbeat())

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
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
            self._remove(channel, client)
            raise
        self._presence_joined(channel, client)

    def leave(self, channel: str, client: Client) -> None:
        """Remove ``client`` from ``channel``; the broker is unsubscribed after a delay."""
        if channel in client.channels:
            self._presence_left(channel, client)
        self._remove(channel, client)

    def _remove(self, channel: str, client: Client) -> None:
        client.channels.discard(channel)
        state = self._broker_channels.get(channel)
        if state is not None:
            state.floors.pop(client, None)
        if self._registry.remove(channel, client):
            state = self._broker_channels[channel]
            if state.is_idle:
                del self._broker_channels[channel]  # its subscribe failed: nothing to undo
            else:
                self._schedule_expiry(channel, state)

    def leave_all(self, client: Client) -> None:
        for channel in list(client.channels):
            self.leave(channel, client)

    def _state(self, channel: str) -> BrokerChannel:
        state = self._broker_channels.get(channel)
        if state is None:
            options = self.rules.options_for(channel)
            state = self._broker_channels[channel] = BrokerChannel(options)
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

    def _schedule_expiry(self, channel: str, state: BrokerChannel) -> None:
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

    async def _unsubscribe(self, channel: str, state: BrokerChannel) -> None:
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
        options = self.rules.options_for(channel)
        # A refusal is counted by the broker (stats.num_dropped), which knows why.
        return self.broker.publish(
            channel, encode_envelope(payload, kind), options if options.has_history else None
        )

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
        registry = self._registry
        for channel, payloads in groups.items():
            state = self._broker_channels.get(channel)
            if state is None or (
                state.sequence is None and not state.joiners and channel not in registry
            ):
                continue  # nobody here reads it (a message in flight past an unsubscribe)
            messages = [decode_envelope(p) for p in payloads]
            if state.sequence is not None:
                messages, repair = state.sequence.accept(messages)
                if repair is not None:
                    self._start_repair(channel, state, repair)
                elif state.sequence.num_held > max(10_000, 10 * state.options.history_size):
                    messages += state.sequence.give_up()  # a repair that never comes back
            if messages:
                self._dispatch(channel, messages, state)
        if self._on_fanout is not None:
            self._on_fanout(time.perf_counter() - started)

    def _deliver_past_floors(
        self,
        channel: str,
        messages: list[Message],
        state: BrokerChannel,
        subs: dict[Client, None],
        slow: list[Subscriber],
    ) -> dict[Client, None]:
        """Give each client with a floor only what follows it; return the others. Rare and
        brief: a floor goes once the live stream passes it."""
        floors = state.floors
        served = set(floors)
        for client, floor in list(floors.items()):
            rest = [
                m
                for m in messages
                if not m.offset or m.epoch != floor.epoch or m.offset > floor.offset
            ]
            if rest:
                self.num_delivered += deliver(
                    [client], channel, rest, self._max_buffered_bytes, slow
                )
            sequence = state.sequence
            if sequence is None or sequence.epoch != floor.epoch or sequence.offset >= floor.offset:
                del floors[client]
        return {s: None for s in subs if s not in served}

    def next_client_number(self) -> int:
        self._num_clients += 1
        return self._num_clients

    def _dispatch(self, channel: str, messages: list[Message], state: BrokerChannel) -> None:
        """Hand ``messages`` to the channel's local subscribers, and to its pending joins."""
        if state.options.join_leave:
            # Presence events reach only the clients that asked for them.
            events = [m for m in messages if m.kind == EVENT]
            if events:
                self._deliver_events(channel, events)
                messages = [m for m in messages if m.kind != EVENT]
                if not messages:
                    return
        if state.sequence is not None:
            num_gaps = sum(1 for m in messages if m.kind == GAP)
            if num_gaps:
                self.num_unrepaired_gaps += num_gaps
                logger.warning("messages on %s were lost and could not be repaired", channel)
        for join in state.joiners:
            join.live.extend(messages)
        subs = self._registry.subscribers(channel)
        if not subs:
            return
        slow: list[Subscriber] = []
        if state.floors:
            subs = self._deliver_past_floors(channel, messages, state, subs, slow)
        self.num_delivered += deliver(subs, channel, messages, self._max_buffered_bytes, slow)
        for sub in slow:
            self._evict_slow(sub)  # type: ignore[arg-type]

    # History: gap repair and joins at a position

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
