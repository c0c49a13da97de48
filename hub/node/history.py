"""History, for the node: reads at a position (recovery, backlogs, history requests), and the
repair of what a history channel's subscription missed.

``History`` owns the repair tasks and their counters; it reads through the broker and hands
what it repaired back through the ``dispatch`` callable it was given, so it never reaches into
the node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from hub.brokers.base import Broker
from hub.core.envelope import Envelope
from hub.core.errors import BrokerUnavailable, ProtocolError
from hub.core.namespaces import ChannelOptions, ChannelRules
from hub.core.protocol import HISTORY_OFF, UNAVAILABLE, UNRECOVERABLE_POSITION
from hub.core.sequence import HistoryPage, Position, recover
from hub.node.state import BrokerChannel

__all__ = ["REPAIR_RETRY_DELAYS_S", "History", "JoinRead"]

logger = logging.getLogger(__name__)

#: Waits between tries to read a history that a gap repair needs (about 10 s in all).
REPAIR_RETRY_DELAYS_S = (0.1, 0.2, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0)

#: At most one log line this often about dropped forged offsets.
FORGED_LOG_INTERVAL_S = 10.0

#: Hands a channel's messages to its local members (``Node.dispatch``).
Dispatch = Callable[[str, list[Envelope], BrokerChannel], None]


@dataclass(frozen=True, slots=True)
class JoinRead:
    """What a join at a position read: where the channel stood, and what to replay."""

    position: Position
    replay: list[Envelope]
    #: Whether the asked-for position was recovered; None when none was asked for.
    recovered: bool | None


class History:
    """A process's reads of channel histories, and its gap repairs."""

    def __init__(
        self,
        broker: Broker,
        rules: ChannelRules,
        *,
        dispatch: Dispatch,
        recovery_max_messages: int,
    ) -> None:
        self._broker = broker
        self._rules = rules
        self._dispatch = dispatch
        self.recovery_max_messages = recovery_max_messages
        #: History channels' messages that pub/sub missed and the history gave back.
        self.num_repaired = 0
        #: Deliveries with an offset the history never assigned, dropped.
        self.num_forged = 0
        self._forged_logged_at = -FORGED_LOG_INTERVAL_S
        self._repairs: set[asyncio.Task[None]] = set()

    async def read(self, channel: str, since: Position | None, limit: int) -> HistoryPage:
        """Up to ``limit`` messages after ``since`` (None: the last ``limit``); raise
        ProtocolError when the channel keeps no history, the position cannot be served, or
        the broker is unreachable."""
        options = self._rules.options_for(channel)
        if not options.has_history:
            raise ProtocolError(
                HISTORY_OFF,
                f"the channel {channel} keeps no history (see history_size in the config "
                "file's [[namespaces]], or --history-size)",
            )
        try:
            page = await self._broker.read_history(
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

    async def read_for_join(
        self, channel: str, options: ChannelOptions, since: Position | None, last: int
    ) -> JoinRead:
        """With ``since``, everything after it (or ``recovered`` False); otherwise the last
        ``last`` messages (none: just the position). Raises BrokerUnavailable."""
        if since is not None:
            page = await self._broker.read_history(
                channel, since=since.offset, limit=self.recovery_max_messages + 1, options=options
            )
            recovery = recover(since, page, self.recovery_max_messages)
            return JoinRead(page.position, recovery.replay, recovery.recovered)
        page = await self._broker.read_history(channel, since=None, limit=last, options=options)
        return JoinRead(page.position, page.messages, None)

    def repair_after_resubscribe(self, channel: str, state: BrokerChannel) -> None:
        """The broker lost the channel's subscription and has it back: read what it missed
        meanwhile, and deliver it before newer live messages."""
        if state.sequence is not None:
            since = state.sequence.begin_repair()
            if since is not None:
                self.start_repair(channel, state, since)

    def start_repair(self, channel: str, state: BrokerChannel, since: Position) -> None:
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
                sequence.reading()
                page = await self._broker.read_history(
                    channel, since=since.offset, limit=options.history_size, options=options
                )
                if page.epoch != since.epoch:
                    sequence.reading()
                    page = await self._broker.read_history(
                        channel, since=0, limit=options.history_size, options=options
                    )
                break
            except BrokerUnavailable as exc:
                logger.info("repairing a gap on %s: %s; retrying in %.1fs", channel, exc, delay)
                await asyncio.sleep(delay)
        if not sequence.is_repairing:
            return
        again = None
        if page is None:
            logger.warning("cannot repair a gap on %s: the history is unreachable", channel)
            messages = sequence.give_up()
        else:
            messages, again = sequence.repaired(page)
            self.num_repaired += sequence.num_from_history
            if sequence.num_forged:
                self._forged(channel, sequence.num_forged)
        if messages:
            self._dispatch(channel, messages, state)
        if again is not None:
            self.start_repair(channel, state, again)

    def _forged(self, channel: str, num: int) -> None:
        self.num_forged += num
        now = time.monotonic()
        if now - self._forged_logged_at >= FORGED_LOG_INTERVAL_S:
            self._forged_logged_at = now
            logger.warning(
                "dropped %d message(s) on %s whose offsets the history never assigned (a "
                "PUBLISH into a history channel that did not go through hub?); %d so far",
                num,
                channel,
                self.num_forged,
            )

    def close(self) -> None:
        for task in list(self._repairs):
            task.cancel()
