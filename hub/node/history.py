"""The node's history side: joins at a position (recovery, backlogs), history reads, and
the repair of what a history channel's subscription missed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING

from hub.brokers.base import Broker
from hub.core.envelope import Envelope
from hub.core.errors import BrokerUnavailable, ProtocolError
from hub.core.namespaces import ChannelOptions, ChannelRules
from hub.core.protocol import HISTORY_OFF, UNAVAILABLE, UNRECOVERABLE_POSITION
from hub.core.registry import Registry
from hub.core.sequence import HistoryPage, Position, after, recover
from hub.node.state import BrokerChannel, Member, PendingJoin

__all__ = ["REPAIR_RETRY_DELAYS_S", "NodeHistory"]

logger = logging.getLogger(__name__)

#: Waits between tries to read a history that a gap repair needs (about 10 s in all).
REPAIR_RETRY_DELAYS_S = (0.1, 0.2, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0)


class NodeHistory:
    """Mixed into Node: everything that needs a channel's history."""

    broker: Broker
    rules: ChannelRules
    recovery_max_messages: int
    num_repaired: int
    _registry: Registry[Member]
    _broker_channels: dict[str, BrokerChannel]
    _repairs: set[asyncio.Task[None]]

    if TYPE_CHECKING:

        def _state(self, channel: str) -> BrokerChannel: ...
        async def _ensure_subscribed(self, channel: str) -> None: ...
        def _schedule_expiry(self, channel: str, state: BrokerChannel) -> None: ...
        def _dispatch(
            self, channel: str, messages: list[Envelope], state: BrokerChannel
        ) -> None: ...
        def _presence_joined(self, channel: str, client: Member) -> None: ...
        def _presence_rewrite(self, channels: Collection[str]) -> None: ...

    def options_for(self, channel: str) -> ChannelOptions:
        return self.rules.options_for(channel)

    async def read_history(self, channel: str, since: Position | None, limit: int) -> HistoryPage:
        """Up to ``limit`` messages after ``since`` (None: the last ``limit``); raise
        ProtocolError when the channel keeps no history, the position cannot be served, or
        the broker is unreachable."""
        options = self.rules.options_for(channel)
        if not options.has_history:
            raise ProtocolError(
                HISTORY_OFF,
                f"the channel {channel} keeps no history (see history_size in the config "
                "file's [[namespaces]], or --history-size)",
            )
        try:
            page = await self.broker.read_history(
                channel,
                since=None if since is None else since.offset,
                limit=limit,
                options=options,
            )
        except BrokerUnavailable as exc:
            raise ProtocolError(UNAVAILABLE, f"{exc}; retry later") from None
        if since is not None:
            first = page.messages[0].offset if page.messages else page.top + 1
            if page.epoch != since.epoch or since.offset > page.top or first != since.offset + 1:
                raise ProtocolError(
                    UNRECOVERABLE_POSITION,
                    f"the history of {channel} no longer holds what follows "
                    f"{since.epoch}:{since.offset} (now {page.epoch}:{page.top}): resync from "
                    "your own source, then read from the current position",
                )
        return page

    def on_resubscribed(self, channels: Collection[str]) -> None:
        """The broker lost its subscription of ``channels`` and has it back: read what each
        history channel missed meanwhile, and deliver it before newer live messages."""
        for channel in channels:
            state = self._broker_channels.get(channel)
            if state is not None and state.sequence is not None:
                since = state.sequence.begin_repair()
                if since is not None:
                    self._start_repair(channel, state, since)
        self._presence_rewrite(channels)

    def _start_repair(self, channel: str, state: BrokerChannel, since: Position) -> None:
        task = asyncio.create_task(self._repair(channel, state, since))
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)

    async def _repair(self, channel: str, state: BrokerChannel, since: Position) -> None:
        sequence = state.sequence
        assert sequence is not None
        options = state.options
        page = None
        # The history may be unreachable for a moment (Redis is just back, and this reader
        # reconnects on its own backoff); what arrives meanwhile is held, within a bound.
        for delay in REPAIR_RETRY_DELAYS_S:
            if not sequence.is_repairing:
                return  # given up meanwhile: held messages passed the bound
            try:
                page = await self.broker.read_history(
                    channel, since=since.offset, limit=options.history_size, options=options
                )
                if page.epoch != since.epoch:
                    page = await self.broker.read_history(
                        channel, since=0, limit=options.history_size, options=options
                    )
                break
            except BrokerUnavailable as exc:
                logger.info("repairing a gap on %s: %s; retrying in %.1fs", channel, exc, delay)
                await asyncio.sleep(delay)
        if not sequence.is_repairing:
            return
        if page is None:
            logger.warning("cannot repair a gap on %s: the history is unreachable", channel)
            messages = sequence.give_up()
        else:
            messages = sequence.repaired(page)
            self.num_repaired += sequence.num_from_history
        if messages:
            self._dispatch(channel, messages, state)

    async def prepare_join(
        self, channel: str, client: Member, *, since: Position | None = None, last: int = 0
    ) -> PendingJoin:
        """Start joining a history channel at a position; finish with ``commit_join``.

        With ``since``, the join recovers everything after it, or reports that it cannot
        (``recovered`` False). With ``last``, it replays the channel's last messages. Either
        way the position is the channel's top when the history was read; live messages that
        arrive meanwhile are kept and follow the replay, so nothing is lost or doubled.
        """
        join = PendingJoin(channel, client)
        state = self._state(channel)
        if state.expiry is not None:
            state.expiry.cancel()
            state.expiry = None
        state.joiners.append(join)
        options = state.options
        try:
            await self._ensure_subscribed(channel)
            if since is not None:
                page = await self.broker.read_history(
                    channel,
                    since=since.offset,
                    limit=self.recovery_max_messages + 1,
                    options=options,
                )
                recovery = recover(since, page, self.recovery_max_messages)
                join.recovered = recovery.recovered
                join.replay = recovery.replay
            else:
                page = await self.broker.read_history(
                    channel, since=None, limit=last, options=options
                )
                join.replay = page.messages
            join.position = page.position
        except BaseException:
            self.abort_join(join)
            raise
        return join

    def commit_join(self, join: PendingJoin) -> list[Envelope]:
        """Add the client to the channel now; return what it must be sent first, in order:
        the replay, then the live messages that followed the position."""
        state = self._broker_channels[join.channel]
        state.joiners.remove(join)
        self._registry.add(join.channel, join.client)
        join.client.channels.add(join.channel)
        self._presence_joined(join.channel, join.client)
        sequence = state.sequence
        if sequence is not None and (
            sequence.epoch != join.position.epoch or sequence.offset < join.position.offset
        ):
            state.floors[join.client] = join.position
        return [*join.replay, *after(join.position, join.live)]

    def abort_join(self, join: PendingJoin) -> None:
        state = self._broker_channels.get(join.channel)
        if state is None or join not in state.joiners:
            return
        state.joiners.remove(join)
        if join.channel in self._registry:
            return
        if state.is_idle:
            del self._broker_channels[join.channel]
        elif state.expiry is None:
            self._schedule_expiry(join.channel, state)
