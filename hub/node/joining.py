"""A join in two steps: what a join's replay may cost (``within``), and ``Joining``, a
member's prepared join of some channels, committed or aborted as one.

``Joining`` talks to the node through ``JoinHost``, the few methods it needs, so this module
never imports the node."""

from __future__ import annotations

from typing import Protocol

from hub.core.envelope import BINARY, Envelope
from hub.core.namespaces import ChannelOptions
from hub.core.sequence import Position
from hub.node.state import Member, PendingJoin

__all__ = ["JoinHost", "Joining", "within"]


class JoinHost(Protocol):
    """What a ``Joining`` needs of the node."""

    max_buffered_bytes: int

    def options_for(self, channel: str) -> ChannelOptions: ...
    def commit_join(self, join: PendingJoin) -> list[Envelope]: ...
    def abort_join(self, join: PendingJoin) -> None: ...
    def evict_slow(self, member: Member) -> None: ...
    def close_slow(self, member: Member) -> None: ...


#: What a replayed message costs on the wire beyond its payload, at most: a hub.v1 frame's
#: header, type, channel and offset fields.
_FRAME_OVERHEAD_BYTES = 96


def within(
    channel: str, replay: list[Envelope], budget: int, *, oldest: bool
) -> tuple[list[Envelope], int]:
    """The part of ``replay`` that fits in ``budget`` bytes on the wire, and its size: its
    oldest messages for a recovery (the rest follows in the next round), its newest for a
    backlog. A join's replays so stay within the member's bound, and the hub holds no more
    for it than it may queue."""
    overhead = _FRAME_OVERHEAD_BYTES + len(channel)
    sizes = [
        (len(m.payload) * 4 // 3 if m.kind == BINARY else len(m.payload)) + overhead  # base64
        for m in replay
    ]
    total = sum(sizes)
    if total <= budget:
        return replay, total
    kept, count = 0, 0
    for size in sizes if oldest else reversed(sizes):
        if kept + size > budget:
            break
        kept += size
        count += 1
    return (replay[:count] if oldest else replay[len(replay) - count :]), kept


class Joining:
    """A member's join of some channels, prepared and not yet committed.

    Between ``Node.prepare_join`` and ``commit`` the caller may await (the SSE preamble is
    written then); ``commit`` adds the member to every channel and writes the reply and
    the replays in one synchronous step, so no live message can slip ahead of them.
    """

    __slots__ = ("is_partial", "member", "node", "pending")

    def __init__(self, node: JoinHost, member: Member) -> None:
        self.node = node
        self.member = member
        self.pending: list[PendingJoin] = []
        #: A recovery's replay did not fit in the member's bound: only its oldest part is
        #: written, and the member is then closed to come back for the rest.
        self.is_partial = False

    @property
    def positions(self) -> dict[str, tuple[Position, bool | None]]:
        """Each history channel's position at the read, and whether recovery held."""
        return {
            j.channel: (j.position, j.recovered)
            for j in self.pending
            if self.node.options_for(j.channel).has_history
        }

    def commit(self, reply: bytes | None) -> None:
        """Join every channel now; write ``reply`` and then each channel's replay, at once.

        What that queues counts toward the member's bound like any delivery: past it, the
        member is closed as a slow consumer (4008). A recovery too large for the bound goes
        in rounds: this round writes the reply and what fits, in order, joins nothing, and
        closes the member (4008), which recovers the rest from where it got to; no live
        message is ever written after a partial replay, so no gap can hide.
        """
        if self.is_partial:
            batches = [(j.channel, j.replay) for j in self.pending if j.replay]
            self.abort()
            self.member.write_now(reply, batches)
            self.node.close_slow(self.member)
            return
        batches = []
        for join in self.pending:
            replay = self.node.commit_join(join)
            if replay:
                batches.append((join.channel, replay))
        self.pending = []
        if reply is not None or batches:
            if self.member.write_now(reply, batches) > self.node.max_buffered_bytes:
                self.node.evict_slow(self.member)

    def abort(self) -> None:
        for join in self.pending:
            self.node.abort_join(join)
        self.pending = []
