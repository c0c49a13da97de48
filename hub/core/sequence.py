"""Ordering a history channel's messages: in order, no duplicate, no silent gap. Pure.

Two places need it:

* ``ChannelSequence``: one per history channel per process. Redis pub/sub may drop messages
  (the subscriber connection was lost, the output-buffer limit) or, after a repair, deliver
  one twice. The sequence passes each offset once, in order; when it sees a jump it holds
  what arrives and asks for the missing range from the history, then merges.
* ``recover``: one client's recovery. It decides whether the client's position can be
  recovered from a page of history, and what to replay.

Both never replay in part: where the missing range is gone, a gap marker (``envelope.gap``)
takes its place in the stream, so that the loss reaches the client explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.core.envelope import Envelope, gap

__all__ = ["ChannelSequence", "HistoryPage", "Position", "Recovery", "after", "recover"]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a reader of a channel stands: the epoch of its history and the last offset."""

    epoch: str
    offset: int


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A read of a channel's history: its epoch, its top offset and some of its messages
    (with offsets, in order)."""

    epoch: str
    top: int
    messages: list[Envelope] = field(default_factory=list)

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.top)


@dataclass(frozen=True, slots=True)
class Recovery:
    """The outcome of a client's recovery: whether it held, and the messages to replay."""

    recovered: bool
    position: Position
    replay: list[Envelope]


def recover(since: Position, page: HistoryPage, max_messages: int) -> Recovery:
    """Can a reader at ``since`` catch up from ``page`` (read with offsets > since.offset)?

    It can only if the epoch is the same, no more than ``max_messages`` are missing, and the
    page holds every offset from since.offset + 1 up to the top. Otherwise nothing is
    replayed: the reader must resync from its own source.
    """
    missing = page.top - since.offset
    if page.epoch != since.epoch or missing < 0 or missing > max_messages:
        return Recovery(False, page.position, [])
    wanted = [m for m in page.messages if since.offset < m.offset <= page.top]
    if len(wanted) != missing or any(
        m.offset != since.offset + 1 + i for i, m in enumerate(wanted)
    ):
        return Recovery(False, page.position, [])
    return Recovery(True, page.position, wanted)


def _in_page(m: Envelope, page: HistoryPage) -> bool:
    """Whether a held message can be one the history script wrote: of the page's epoch, at
    an offset the page reaches."""
    return m.epoch == page.epoch and m.offset <= page.top


def after(position: Position, live: list[Envelope]) -> list[Envelope]:
    """The live messages (buffered during a read) that follow ``position``, in order."""
    return [
        m for m in live if not m.offset or m.epoch != position.epoch or m.offset > position.offset
    ]


class ChannelSequence:
    """One history channel's delivery order in this process.

    ``accept`` takes what the broker delivered and returns what may go to subscribers now;
    when it finds a gap it returns the range to repair too, and holds everything after it
    until ``repaired`` gets the history page (or ``give_up`` is called).
    """

    __slots__ = (
        "_held",
        "_num_suspects",
        "epoch",
        "is_repairing",
        "num_forged",
        "num_from_history",
        "offset",
    )

    def __init__(self, epoch: str = "", offset: int = 0) -> None:
        #: The position of the last message passed on; epoch "" until the first one.
        self.epoch = epoch
        self.offset = offset
        self.is_repairing = False
        self._held: list[Envelope] = []
        #: Messages that the last repair took from the history (pub/sub had missed them).
        self.num_from_history = 0
        #: Held messages that the last repair found the history never had: an offset that
        #: only the history script may assign, written by someone else (a forged PUBLISH).
        self.num_forged = 0
        #: How many of the held messages had arrived when the history read was sent.
        self._num_suspects = 0

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.offset)

    def accept(self, messages: list[Envelope]) -> tuple[list[Envelope], Position | None]:
        """(messages to deliver now, the position to repair from, if a repair must start)."""
        if self.is_repairing:
            self._held.extend(messages)
            return [], None
        out: list[Envelope] = []
        for index, m in enumerate(messages):
            if not m.offset:
                out.append(m)  # a plain PUBLISH from another program: no position to keep
            elif not self.epoch:
                self.epoch, self.offset = m.epoch, m.offset
                out.append(m)
            elif m.epoch != self.epoch:
                # The history was lost (a Redis restart without persistence): what came
                # before this message in the new epoch may still be read.
                return out, self._start_repair(messages[index:])
            elif m.offset <= self.offset:
                continue  # a duplicate (it came through a repair already)
            elif m.offset == self.offset + 1:
                self.offset = m.offset
                out.append(m)
            else:
                return out, self._start_repair(messages[index:])
        return out, None

    def begin_repair(self) -> Position | None:
        """Hold what arrives until the history since our position is read (after the broker
        lost and regained its subscription); None if there is no position yet."""
        if self.is_repairing or not self.epoch:
            return None
        return self._start_repair([])

    def _start_repair(self, held: list[Envelope]) -> Position:
        self.is_repairing = True
        self._held = list(held)
        self._num_suspects = 0
        return self.position

    def reading(self) -> None:
        """The repair's history read is being sent now. A message held by then was published
        before the read ran, and the history script writes the stream before it publishes:
        if it is real, the page has it, or at least reaches its offset."""
        self._num_suspects = len(self._held)

    @property
    def num_held(self) -> int:
        return len(self._held)

    def repaired(self, page: HistoryPage) -> tuple[list[Envelope], Position | None]:
        """Merge the history page with what was held; return what to deliver, and the
        position to repair from again if a message that arrived after the read jumps ahead.

        The page was read after our position in our epoch or, when the epoch has changed,
        from the start of the new one. A message held before the read whose offset the page
        does not reach (or of another epoch) was never written by the history script: it is
        dropped and counted in ``num_forged``, and the channel keeps its real position.
        """
        held, self._held = self._held, []
        suspects, later = held[: self._num_suspects], held[self._num_suspects :]
        self.is_repairing = False
        out: list[Envelope] = []
        if page.epoch != self.epoch:
            # Our epoch is gone: everything after our position in it is lost. The new
            # epoch's history is read from its start, so its messages are all in the page.
            out.append(gap(page.epoch, 0))
            self.epoch, self.offset = page.epoch, 0
        trusted = [m for m in suspects if not m.offset or _in_page(m, page)]
        self.num_forged = len(suspects) - len(trusted)
        candidates = sorted(
            (m for m in (*page.messages, *trusted) if m.offset and m.epoch == self.epoch),
            key=lambda m: m.offset,
        )
        live = {id(m) for m in trusted}
        self.num_from_history = 0
        for m in candidates:
            if m.offset <= self.offset:
                continue
            if m.offset != self.offset + 1:
                out.append(gap(self.epoch, m.offset - 1))  # trimmed or expired meanwhile
            self.offset = m.offset
            out.append(m)
            self.num_from_history += id(m) not in live
        # Plain publishes that were held go out after the merge, as they are.
        out.extend(m for m in trusted if not m.offset)
        # What arrived after the read is checked like any live message: a jump is read again.
        more, again = self.accept(later)
        return out + more, again

    def give_up(self) -> list[Envelope]:
        """The history could not be read: tell of the loss, then pass on what was held."""
        held, self._held = self._held, []
        self.is_repairing = False
        out: list[Envelope] = []
        positioned = sorted((m for m in held if m.offset), key=lambda m: m.offset)
        if positioned:
            first = positioned[0]
            out.append(gap(first.epoch, first.offset - 1))
            self.epoch, self.offset = first.epoch, first.offset - 1
            for m in positioned:
                if m.epoch == self.epoch and m.offset > self.offset:
                    self.offset = m.offset
                    out.append(m)
        out.extend(m for m in held if not m.offset)
        return out
