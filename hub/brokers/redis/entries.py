"""What the Redis pipeline queues: one ``Entry`` per command, from the moment it is queued
until its reply, and the bound on what a process holds unanswered."""

from __future__ import annotations

from dataclasses import dataclass

from hub.brokers.scripts import new_message_id
from hub.core.namespaces import ChannelOptions

__all__ = ["EXEC", "GUARD", "MULTI", "Entry", "HeldBudget", "HistoryPublish", "Marker"]


@dataclass
class HeldBudget:
    """The bounds of what a process holds unanswered (while Redis is away, or slow), and
    what it holds now. The partitions of a cluster broker share one: the bound is the
    process's, and a hot partition may use all of it."""

    max_messages: int
    max_bytes: int
    messages: int = 0
    bytes: int = 0

    def fits(self, size: int) -> bool:
        return self.messages < self.max_messages and self.bytes + size <= self.max_bytes


class HistoryPublish:
    """A history channel's publish: its options, and the id that makes a resend idempotent."""

    __slots__ = ("channel", "id", "is_resend", "options")

    def __init__(self, channel: str, options: ChannelOptions) -> None:
        self.channel = channel
        self.options = options
        self.id = new_message_id()
        self.is_resend = False


class Marker:
    """The kind of the commands of the transaction around a write on Redis Cluster."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


#: None: a PUBLISH (SPUBLISH) of ``payload`` to ``key``; a HistoryPublish: the history
#: script; a Marker: MULTI, the guard, EXEC.
Kind = HistoryPublish | Marker | None


class Entry:
    """One command: unsent, then in flight (sent at ``sent_at``, for the round-trip metric;
    0.0: not timed) until its reply settles it or a reconnect sends it again."""

    __slots__ = ("key", "kind", "payload", "sent_at")

    def __init__(self, key: bytes, payload: bytes, kind: Kind = None) -> None:
        self.key = key
        self.payload = payload
        self.kind = kind
        self.sent_at = 0.0


#: The transaction's own entries (never resent, never counted): shared, never changed.
MULTI, GUARD, EXEC = (Entry(b"", b"", Marker(name)) for name in ("MULTI", "guard", "EXEC"))
