"""The node: one process's view of the hub. It holds the registry of local members, fans the
broker's batches out to them, owns the one join routine of every transport (``prepare_join``,
then ``Joining.commit``), and orchestrates its collaborators: ``Subscriptions``, ``History``,
``Presence``, ``Control`` (the control channel between instances) and ``Users``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence

from hub.brokers.base import Broker, PresenceManager
from hub.core.delivery import deliver
from hub.core.envelope import (
    EVENT,
    GAP,
    TEXT,
    Envelope,
    decode_envelope,
    encode_envelope,
)
from hub.core.errors import CloseCode
from hub.core.namespaces import ChannelOptions, ChannelRules
from hub.core.policy import BUFFER_FULL, PublishPolicy, Refusal
from hub.core.protocol import RATE_LIMITED
from hub.core.registry import Registry
from hub.core.sequence import Position, after
from hub.node.control import Command, Control
from hub.node.history import History
from hub.node.joining import Joining, within
from hub.node.presence import Presence
from hub.node.state import BrokerChannel, Member, PendingJoin
from hub.node.subscriptions import Subscriptions
from hub.node.users import Users

__all__ = ["Joining", "Node"]

logger = logging.getLogger(__name__)


class Node:
    """One process's view of the hub."""

    def __init__(
        self,
        *,
        broker: Broker,
        max_buffered_bytes: int,
        presence: PresenceManager | None = None,
        unsubscribe_delay_s: float = 2.0,
        rules: ChannelRules | None = None,
        recovery_max_messages: int = 1000,
        presence_ttl_s: float = 60.0,
        on_fanout: Callable[[float], None] | None = None,
        version: str = "",
    ) -> None:
        self.broker = broker
        self.version = version
        self.started_at = time.time()
        self.rules = rules or ChannelRules((), ChannelOptions())
        #: Unsent bytes past which a member is closed as a slow consumer (4008); a join's
        #: replays are kept within it too.
        self.max_buffered_bytes = max_buffered_bytes
        self._on_fanout = on_fanout
        self._registry: Registry[Member] = Registry()
        self.subscriptions = Subscriptions(
            broker,
            self.rules,
            has_members=self._registry.__contains__,
            unsubscribe_delay_s=unsubscribe_delay_s,
        )
        self.history = History(
            broker, self.rules, dispatch=self.dispatch, recovery_max_messages=recovery_max_messages
        )
        self.presence = Presence(
            presence,
            self.rules,
            registry=self._registry,
            ttl_s=presence_ttl_s,
        )
        self.control = Control(
            name=self.presence.name,
            publish=broker.publish,
            subscribe=broker.subscribe,
            store=presence,
            meta={"version": version, "started_at": round(self.started_at, 3)},
            is_ready=lambda: broker.is_ready,
        )
        self.users = Users(
            request=self.control.request,
            prepare_join=self.prepare_join,
            leave=self.leave,
            client_id=self.presence.client_id,
            stats=self.stats,
        )
        self.control.handler = self.users.handle
        # Plain counters on the hot path; metrics read them at scrape time.
        self.num_received = 0
        self.num_delivered = 0
        self.num_slow_consumers = 0
        #: Client publishes refused by the per-connection rate limit (both modes).
        self.num_rate_limited = 0
        #: Messages fanned out per channel since the metrics last took them.
        self.channel_messages: dict[str, int] = {}
        #: Gaps that could not be repaired (trimmed, expired, or a lost epoch): each reached
        #: the channel's hub.v1 subscribers as a gap frame.
        self.num_unrepaired_gaps = 0

    # Lifecycle

    async def start(self) -> None:
        await self.broker.start(self)
        self.presence.start()
        await self.control.start()

    async def close(self) -> None:
        self.control.close()
        self.presence.close()
        self.history.close()
        self.subscriptions.close()
        await self.broker.close()

    @property
    def is_ready(self) -> bool:
        """The broker is up, and this instance is in the list that the server API's
        commands wait on (so a command sent from anywhere reaches it)."""
        return self.broker.is_ready and self.control.is_listed

    def options_for(self, channel: str) -> ChannelOptions:
        return self.rules.options_for(channel)

    # Joins and leaves

    async def prepare(self, channel: str) -> None:
        """Subscribe the broker to ``channel`` ahead of a member joining it.

        The server calls this during the WebSocket handshake, so that by the time a client
        sees its connection open, messages on its channel already reach this process. If no
        member joins, the subscription expires like that of a channel whose members left.
        """
        await self.subscriptions.ensure(channel)
        self.subscriptions.release(channel)

    async def prepare_join(
        self,
        member: Member,
        channels: Sequence[str],
        *,
        recover: Mapping[str, Position] | None = None,
        last: int = 0,
        positioned: bool = True,
    ) -> Joining:
        """Start joining ``channels``; finish with ``Joining.commit`` (or ``abort``).

        Each channel's broker subscription is made, and on a history channel its history is
        read: from ``recover[channel]`` when given (everything after it, or ``recovered``
        False), else its ``last`` messages, else just its position (unless ``positioned``
        is False: raw mode has no use for it). Live messages that
        arrive meanwhile are kept and follow the replay, so nothing is lost or doubled. On
        any failure every channel is rolled back and the error raised.
        """
        joining = Joining(self, member)
        budget = self.max_buffered_bytes
        try:
            for channel in channels:
                state = self.subscriptions.hold(channel)
                join = PendingJoin(channel, member)
                state.joiners.append(join)
                joining.pending.append(join)
                await self.subscriptions.ensure(channel)
                since = recover.get(channel) if recover else None
                if state.options.has_history and (positioned or last or since is not None):
                    read = await self.history.read_for_join(channel, state.options, since, last)
                    join.position, join.recovered = read.position, read.recovered
                    join.replay, size = within(channel, read.replay, budget, oldest=bool(since))
                    budget -= size
                    if since is not None and len(join.replay) < len(read.replay):
                        joining.is_partial = True
        except BaseException:
            joining.abort()
            raise
        return joining

    async def join(self, channel: str, member: Member) -> None:
        """Add ``member`` to ``channel``, with nothing to replay or reply."""
        (await self.prepare_join(member, [channel], positioned=False)).commit(None)

    def commit_join(self, join: PendingJoin) -> list[Envelope]:
        """Add a prepared join's member to its channel; return its replay and what followed."""
        channel, member = join.channel, join.member
        state = self.subscriptions.record(channel)
        state.joiners.remove(join)
        self._registry.add(channel, member)
        member.channels.add(channel)
        self.presence.joined(channel, member)
        sequence = state.sequence
        if (
            sequence is not None
            and join.position.epoch
            and (sequence.epoch != join.position.epoch or sequence.offset < join.position.offset)
        ):
            state.floors[member] = join.position
        return [*join.replay, *after(join.position, join.live)]

    def abort_join(self, join: PendingJoin) -> None:
        state = self.subscriptions.get(join.channel)
        if state is not None and join in state.joiners:
            state.joiners.remove(join)
            self.subscriptions.release(join.channel)

    def leave(self, channel: str, member: Member) -> None:
        """Remove ``member`` from ``channel``; the broker is unsubscribed after a delay."""
        if channel not in member.channels:
            return
        self.presence.left(channel, member)
        member.channels.discard(channel)
        state = self.subscriptions.get(channel)
        if state is not None:
            state.floors.pop(member, None)
        if self._registry.remove(channel, member):
            self.subscriptions.release(channel)

    def leave_all(self, member: Member) -> None:
        for channel in list(member.channels):
            self.leave(channel, member)

    def is_subscribed(self, channel: str) -> bool:
        """Whether the broker delivers ``channel`` to this process now."""
        return self.subscriptions.is_subscribed(channel)

    def channels(self) -> Iterator[tuple[str, int]]:
        """(channel, local member count) for every live channel of this process."""
        return self._registry.items()

    @property
    def num_channels(self) -> int:
        return len(self._registry)

    @property
    def num_subscriptions(self) -> int:
        return self._registry.num_subscriptions

    def stats(self) -> Command:
        """This instance as ``GET /api/info`` lists it."""
        return {
            "version": self.version,
            "uptime_s": round(time.time() - self.started_at, 1),
            "connections": self.users.num_connections,
            "users": self.users.num_users,
            "channels": self.num_channels,
            "subscriptions": self.num_subscriptions,
        }

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

    # The broker's events (BrokerEventHandler)

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
            state = self.subscriptions.get(channel)
            if state is None:
                if channel in self.control.channels:
                    self.control.on_messages(channel, payloads)
                continue  # nobody here reads it (a message in flight past an unsubscribe)
            if state.sequence is None and not state.joiners and channel not in registry:
                continue
            messages = [decode_envelope(p) for p in payloads]
            if state.sequence is not None:
                messages, repair = state.sequence.accept(messages)
                if repair is not None:
                    self.history.start_repair(channel, state, repair)
                elif state.sequence.num_held > max(10_000, 10 * state.options.history_size):
                    messages += state.sequence.give_up()  # a repair that never comes back
            if messages:
                self.dispatch(channel, messages, state)
        if self._on_fanout is not None:
            self._on_fanout(time.perf_counter() - started)

    def on_resubscribed(self, channels: Collection[str]) -> None:
        """The broker lost its subscription of ``channels`` and has it back: each history
        channel repairs what it missed, and presence is written again."""
        for channel in channels:
            state = self.subscriptions.get(channel)
            if state is not None:
                self.history.repair_after_resubscribe(channel, state)
        self.presence.rewrite(channels)

    def take_channel_messages(self) -> dict[str, int]:
        """The per-channel message counts since the last call (and start again)."""
        counts, self.channel_messages = self.channel_messages, {}
        return counts

    # The fan-out

    def dispatch(self, channel: str, messages: list[Envelope], state: BrokerChannel) -> None:
        """Hand ``messages`` to the channel's local members, and to its pending joins."""
        # One dict update per channel per batch, for /stats' channel rates; the metrics take
        # the counts once a second, so the dict holds only the last second's channels.
        counts = self.channel_messages
        counts[channel] = counts.get(channel, 0) + len(messages)
        # Presence events reach only the members that asked for them, and only where this
        # process has join/leave events on: another hub sharing the Redis may publish them.
        events = [m for m in messages if m.kind == EVENT]
        if events:
            listeners = self.presence.listeners(channel) if state.options.join_leave else None
            if listeners:
                self._deliver(listeners, channel, events)
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
        if state.floors:
            subs = self._deliver_past_floors(channel, messages, state, subs)
        self._deliver(subs, channel, messages)

    def _deliver(self, members: Collection[Member], channel: str, messages: list[Envelope]) -> None:
        slow: list[Member] = []
        self.num_delivered += deliver(members, channel, messages, self.max_buffered_bytes, slow)
        for member in slow:
            self.evict_slow(member)

    def _deliver_past_floors(
        self,
        channel: str,
        messages: list[Envelope],
        state: BrokerChannel,
        subs: dict[Member, None],
    ) -> dict[Member, None]:
        """Give each member with a floor only what follows it; return the others. Rare and
        brief: a floor goes once the live stream passes it."""
        floors = state.floors
        served = set(floors)
        for member, floor in list(floors.items()):
            rest = [
                m
                for m in messages
                if not m.offset or m.epoch != floor.epoch or m.offset > floor.offset
            ]
            if rest:
                self._deliver([member], channel, rest)
            sequence = state.sequence
            if sequence is None or sequence.epoch != floor.epoch or sequence.offset >= floor.offset:
                del floors[member]
        return {s: None for s in subs if s not in served}

    def evict_slow(self, member: Member) -> None:
        if not member.channels:
            return  # already evicted by an earlier channel in this batch
        self.close_slow(member)

    def close_slow(self, member: Member) -> None:
        self.num_slow_consumers += 1
        logger.warning(
            "closing a slow consumer (unsent bytes passed %d; %d evicted so far)",
            self.max_buffered_bytes,
            self.num_slow_consumers,
        )
        self.leave_all(member)
        member.disconnect(CloseCode.SLOW_CONSUMER, "slow consumer")
