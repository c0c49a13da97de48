"""What the node keeps per channel and per joining member, and what it needs of a member."""

from __future__ import annotations

import asyncio
from typing import Protocol

from hub.core.delivery import Subscriber
from hub.core.envelope import Envelope
from hub.core.namespaces import ChannelOptions
from hub.core.sequence import ChannelSequence, Position

__all__ = ["BrokerChannel", "Member", "PendingJoin"]


class Member(Subscriber, Protocol):
    """A connection as the node sees it: a fan-out subscriber that knows its channels."""

    channels: set[str]
    #: 0 until presence numbers it (``Presence.client_id``): the id's second half.
    number: int
    #: The JWT ``sub``; None without authentication.
    user: str | None

    def write_now(self, reply: bytes | None, batches: list[tuple[str, list[Envelope]]]) -> int:
        """Write ``reply`` (a text frame; None: nothing) and then each channel's messages,
        in this subscriber's format, before returning: nothing live can slip in between.
        Return the bytes now unsent, or -1 when the connection is closed."""
        ...

    def disconnect(self, code: int, reason: str) -> None:
        """Start closing the connection with ``code``; must not block."""
        ...


class BrokerChannel:
    """One channel's subscription at the broker, from the first SUBSCRIBE to the UNSUBSCRIBE.

    The record lives while any of its fields is set or the channel has a local client.
    """

    __slots__ = (
        "expiry",
        "floors",
        "is_subscribed",
        "joiners",
        "options",
        "sequence",
        "subscribing",
        "unsubscribing",
    )

    def __init__(self, options: ChannelOptions) -> None:
        self.options = options
        #: The delivery order of a history channel; None elsewhere.
        self.sequence = ChannelSequence() if options.has_history else None
        #: Clients reading the history before they join: what arrives meanwhile is kept.
        self.joiners: list[PendingJoin] = []
        #: Clients that joined at a position the live stream had not reached yet: each gets
        #: only what follows it (a message of its replay may still be in flight live).
        self.floors: dict[Member, Position] = {}
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
        return (
            not self.is_subscribed
            and self.subscribing is None
            and self.unsubscribing is None
            and not self.joiners
        )


class PendingJoin:
    """A member joining one channel: the broker is subscribed (and, on a history channel,
    the history read) while what arrives live meanwhile is kept, until ``Joining.commit``
    adds it to the channel."""

    __slots__ = ("channel", "live", "member", "position", "recovered", "replay")

    def __init__(self, channel: str, member: Member) -> None:
        self.channel = channel
        self.member = member
        self.live: list[Envelope] = []
        self.position = Position("", 0)
        #: Whether the asked-for position was recovered; None when none was asked for.
        self.recovered: bool | None = None
        self.replay: list[Envelope] = []
