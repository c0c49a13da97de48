"""Ordering a history channel: gap repair and client recovery, over generated interleavings."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.envelope import GAP, Envelope
from hub.core.sequence import ChannelSequence, HistoryPage, Position, after, recover

EPOCH = "e1"


def msg(offset: int, epoch: str = EPOCH) -> Envelope:
    return Envelope(b"m%d" % offset, offset=offset, epoch=epoch)


def offsets(messages: list[Envelope]) -> list[int]:
    return [m.offset for m in messages if m.kind != GAP]


@st.composite
def schedules(draw: st.DrawFn) -> tuple[int, list[list[int]], list[int]]:
    """(messages published, live batches of offsets as pub/sub delivers them, read delays).

    Live delivery keeps publish order but may drop ranges (a lost subscription) and repeat
    offsets already delivered (a repair's overlap)."""
    n = draw(st.integers(1, 60))
    live: list[int] = []
    i = 1
    while i <= n:
        if draw(st.integers(0, 9)) == 0:
            i += draw(st.integers(1, 8))  # a dropped range
            continue
        live.append(i)
        if live and draw(st.integers(0, 9)) == 0:
            live.append(draw(st.sampled_from(live)))  # a duplicate of something earlier
        i += 1
    cuts = sorted(draw(st.lists(st.integers(0, len(live)), max_size=10)))
    batches = [live[a:b] for a, b in zip([0, *cuts], [*cuts, len(live)], strict=True)]
    delays = draw(st.lists(st.integers(0, 3), min_size=len(batches) + 1))
    return n, batches, delays


@settings(max_examples=300, deadline=None)
@given(schedules())
def test_repair_never_leaves_a_gap_or_a_duplicate(
    schedule: tuple[int, list[list[int]], list[int]],
) -> None:
    """Whatever pub/sub drops or repeats, and however late the history read comes back, the
    subscribers see every offset once, in order, when the history still holds them all."""
    n, batches, delays = schedule
    seq = ChannelSequence(EPOCH, 0)
    out: list[Envelope] = []
    published = 0
    pending: tuple[Position, int] | None = None  # (read from, batches until it returns)

    def read(since: Position) -> HistoryPage:
        return HistoryPage(
            EPOCH, published, [msg(o) for o in range(since.offset + 1, published + 1)]
        )

    for step, batch in enumerate(batches):
        published = max([published, *batch])
        delivered, repair = seq.accept([msg(o) for o in batch])
        out += delivered
        if repair is not None:
            assert pending is None
            pending = (repair, delays[step])
        if pending is not None:
            since, wait = pending
            if wait == 0:
                # The read sees what is published by now, maybe more than arrived live.
                published = max(published, min(n, published + delays[step + 1]))
                seq.reading()
                merged, again = seq.repaired(read(since))
                assert again is None and seq.num_forged == 0
                out += merged
                pending = None
            else:
                pending = (since, wait - 1)
    published = n
    if pending is not None:
        seq.reading()
        out += seq.repaired(read(pending[0]))[0]
    repair = seq.begin_repair()  # the end of the stream: fetch what pub/sub never brought
    if repair is not None:
        seq.reading()
        out += seq.repaired(read(repair))[0]
    assert all(m.kind != GAP for m in out)
    assert offsets(out) == list(range(1, n + 1))


def test_a_trimmed_range_becomes_one_gap_marker() -> None:
    """When the history no longer holds the missing range, a gap marker stands for it."""
    seq = ChannelSequence(EPOCH, 0)
    delivered, repair = seq.accept([msg(1), msg(2), msg(7), msg(8)])
    assert offsets(delivered) == [1, 2] and repair == Position(EPOCH, 2)
    seq.reading()
    out, again = seq.repaired(HistoryPage(EPOCH, 8, [msg(5), msg(6), msg(7), msg(8)]))
    assert again is None
    assert [(m.kind == GAP, m.offset) for m in out] == [
        (True, 4),
        (False, 5),
        (False, 6),
        (False, 7),
        (False, 8),
    ]


def test_a_new_epoch_is_a_gap_then_its_messages_from_the_start() -> None:
    """After Redis lost the history, the old epoch's tail is a gap; the new epoch's
    messages that pub/sub missed are read from its start."""
    seq = ChannelSequence(EPOCH, 0)
    seq.accept([msg(1), msg(2)])
    delivered, repair = seq.accept([msg(3, "e2")])
    assert delivered == [] and repair == Position(EPOCH, 2)
    seq.reading()
    out, _ = seq.repaired(HistoryPage("e2", 3, [msg(1, "e2"), msg(2, "e2"), msg(3, "e2")]))
    assert out[0].kind == GAP and (out[0].epoch, out[0].offset) == ("e2", 0)
    assert offsets(out) == [1, 2, 3] and seq.position == Position("e2", 3)


def test_a_forged_offset_is_dropped_and_the_channel_keeps_flowing() -> None:
    """A message held before the read whose offset the history never reached is dropped and
    counted; the real position stays, and the next real message is delivered."""
    seq = ChannelSequence(EPOCH, 0)
    seq.accept([msg(1), msg(2)])
    delivered, repair = seq.accept([msg(1_000_000)])
    assert delivered == [] and repair == Position(EPOCH, 2)
    seq.reading()
    out, again = seq.repaired(HistoryPage(EPOCH, 2, []))
    assert out == [] and again is None and seq.num_forged == 1
    assert seq.position == Position(EPOCH, 2)
    assert offsets(seq.accept([msg(3)])[0]) == [3]


def test_a_forged_offset_of_another_epoch_is_dropped() -> None:
    """An offset in an epoch the history does not have is not trusted either."""
    seq = ChannelSequence(EPOCH, 0)
    seq.accept([msg(1)])
    _, repair = seq.accept([msg(5, "made-up")])
    assert repair is not None
    seq.reading()
    out, again = seq.repaired(HistoryPage(EPOCH, 1, []))
    assert out == [] and again is None and seq.num_forged == 1


def test_a_jump_that_arrives_during_the_read_is_read_again() -> None:
    """A message that came after the read was sent is not judged by that read: a jump
    among those starts another repair, which the next read then settles."""
    seq = ChannelSequence(EPOCH, 0)
    seq.accept([msg(1)])
    seq.accept([msg(3)])
    seq.reading()
    seq.accept([msg(9)])  # held, after the read went out
    out, again = seq.repaired(HistoryPage(EPOCH, 3, [msg(2), msg(3)]))
    assert offsets(out) == [2, 3] and again == Position(EPOCH, 3) and seq.num_forged == 0
    seq.reading()
    out, again = seq.repaired(HistoryPage(EPOCH, 3, []))
    assert out == [] and again is None and seq.num_forged == 1


def test_give_up_tells_of_the_loss_and_passes_on_what_was_held() -> None:
    """Giving up a repair is a gap, then the messages that were held."""
    seq = ChannelSequence(EPOCH, 0)
    seq.accept([msg(1)])
    seq.accept([msg(5)])
    seq.accept([msg(6), Envelope(b"plain")])
    out = seq.give_up()
    assert out[0].kind == GAP and out[0].offset == 4
    assert offsets(out) == [5, 6, 0] and not seq.is_repairing


@st.composite
def recoveries(draw: st.DrawFn) -> tuple[Position, HistoryPage, int]:
    top = draw(st.integers(0, 50))
    kept = draw(st.integers(0, top))  # the history keeps the last `kept` offsets
    since = draw(st.integers(0, top + 3))
    epoch = draw(st.sampled_from([EPOCH, EPOCH, "other"]))
    page = HistoryPage(EPOCH, top, [msg(o) for o in range(max(since, top - kept) + 1, top + 1)])
    return Position(epoch, since), page, draw(st.integers(1, 60))


@settings(max_examples=300, deadline=None)
@given(recoveries())
def test_recover_replays_exactly_the_missing_range_or_nothing(
    case: tuple[Position, HistoryPage, int],
) -> None:
    """recover replays the whole missing range when the page holds it, else nothing."""
    since, page, limit = case
    result = recover(since, page, limit)
    missing = page.top - since.offset
    holds = (
        since.epoch == page.epoch
        and 0 <= missing <= limit
        and all(o in offsets(page.messages) for o in range(since.offset + 1, page.top + 1))
    )
    assert result.recovered == holds
    assert result.position == Position(page.epoch, page.top)
    if holds:
        assert offsets(result.replay) == list(range(since.offset + 1, page.top + 1))
    else:
        assert result.replay == []


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30))
def test_replay_then_buffered_live_messages_is_contiguous(since: int, top: int, live: int) -> None:
    """Live messages buffered while the history was read overlap it or follow it: after the
    replay, ``after`` keeps exactly those past the top, so the client sees each offset once."""
    top = max(top, since)
    page = HistoryPage(EPOCH, top, [msg(o) for o in range(since + 1, top + 1)])
    result = recover(Position(EPOCH, since), page, 1000)
    buffered = [msg(o) for o in range(max(1, top - live // 2), top + live + 1)]
    seen = offsets(result.replay) + offsets(after(result.position, buffered))
    assert seen == list(range(since + 1, top + live + 1))
