"""The broker side of each channel: one SUBSCRIBE per channel per process, whatever its
number of local members, and a delayed UNSUBSCRIBE once the last one has left.

- The first member subscribes the broker; concurrent joins wait on the same SUBSCRIBE. If it
  fails, each waiter tries for itself.
- When the last member leaves, the UNSUBSCRIBE waits ``unsubscribe_delay_s``; a re-join in
  that window cancels it, so reconnect storms cause no churn.
- A join that lands while the UNSUBSCRIBE is in flight waits for it, then subscribes again.
- A record goes away once nothing is set and the channel has no local member.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

from hub.brokers.base import Broker
from hub.core.namespaces import ChannelRules
from hub.node.state import BrokerChannel

__all__ = ["Subscriptions"]

logger = logging.getLogger(__name__)


class Subscriptions:
    """Every channel's ``BrokerChannel`` record, and the SUBSCRIBE/UNSUBSCRIBE behind it."""

    def __init__(
        self,
        broker: Broker,
        rules: ChannelRules,
        *,
        has_members: Callable[[str], bool],
        unsubscribe_delay_s: float,
    ) -> None:
        self._broker = broker
        self._rules = rules
        #: Whether a channel has local members now (the registry's answer).
        self._has_members = has_members
        self._unsubscribe_delay_s = unsubscribe_delay_s
        self._records: dict[str, BrokerChannel] = {}

    def get(self, channel: str) -> BrokerChannel | None:
        return self._records.get(channel)

    def record(self, channel: str) -> BrokerChannel:
        """The channel's record, made on first use with the channel's options."""
        state = self._records.get(channel)
        if state is None:
            state = self._records[channel] = BrokerChannel(self._rules.options_for(channel))
        return state

    def items(self) -> Iterator[tuple[str, BrokerChannel]]:
        return iter(list(self._records.items()))

    def is_subscribed(self, channel: str) -> bool:
        state = self._records.get(channel)
        return state is not None and state.is_subscribed

    async def ensure(self, channel: str) -> None:
        """Return once the broker delivers ``channel`` to this process."""
        while True:
            # Looked up afresh each time: a failed subscribe may have dropped the record.
            state = self.record(channel)
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
                await self._broker.subscribe(channel)
                state.is_subscribed = True
            finally:
                state.subscribing = None
                done.set_result(None)
                self._drop_if_unused(channel, state)

    def hold(self, channel: str) -> BrokerChannel:
        """The record, with its delayed UNSUBSCRIBE cancelled: someone is joining."""
        state = self.record(channel)
        if state.expiry is not None:
            state.expiry.cancel()
            state.expiry = None
        return state

    def release(self, channel: str) -> None:
        """Nobody local needs ``channel`` any more (its last member left, or a join was
        abandoned): unsubscribe after the delay, or forget a record that holds nothing."""
        state = self._records.get(channel)
        if state is None or self._has_members(channel) or state.joiners:
            return
        if state.is_idle:
            del self._records[channel]  # its subscribe failed: nothing to undo
        else:
            self.expire_later(channel, state)

    def expire_later(self, channel: str, state: BrokerChannel) -> None:
        if state.expiry is not None:
            state.expiry.cancel()
        loop = asyncio.get_running_loop()
        state.expiry = loop.call_later(self._unsubscribe_delay_s, self._expire, channel)

    def _expire(self, channel: str) -> None:
        state = self._records[channel]
        state.expiry = None
        if self._has_members(channel):
            return
        if state.is_subscribed:
            state.is_subscribed = False
            state.unsubscribing = asyncio.create_task(self._unsubscribe(channel, state))
        elif state.is_idle:
            del self._records[channel]

    async def _unsubscribe(self, channel: str, state: BrokerChannel) -> None:
        try:
            await self._broker.unsubscribe(channel)
        except Exception:
            logger.exception("unsubscribing %s failed", channel)
        finally:
            state.unsubscribing = None
            self._drop_if_unused(channel, state)

    def _drop_if_unused(self, channel: str, state: BrokerChannel) -> None:
        if state.is_idle and not self._has_members(channel) and state.expiry is None:
            self._records.pop(channel, None)

    def close(self) -> None:
        for state in self._records.values():
            if state.expiry is not None:
                state.expiry.cancel()
                state.expiry = None
