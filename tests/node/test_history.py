"""History for the node (``hub.node.history``): validated reads, reads for a join, and the
repair of a gap, against the memory broker."""

from __future__ import annotations

import asyncio

import pytest
from support.node import RecordingBroker

from hub.brokers.memory import MemoryBroker
from hub.core.envelope import GAP, TEXT, Envelope
from hub.core.errors import BrokerUnavailable, ProtocolError
from hub.core.namespaces import ChannelOptions, ChannelRules, Namespace
from hub.core.protocol import HISTORY_OFF, UNAVAILABLE, UNRECOVERABLE_POSITION
from hub.core.sequence import Position
from hub.node import history as history_module
from hub.node.history import History
from hub.node.state import BrokerChannel

OPTIONS = ChannelOptions(history_size=5, history_ttl_s=60)
RULES = ChannelRules((Namespace("h.*", OPTIONS),), ChannelOptions())


async def filled(broker: MemoryBroker, channel: str, n: int) -> None:
    await broker.start(_Sink())
    for i in range(n):
        broker.publish(channel, str(i + 1).encode(), OPTIONS)
    await asyncio.sleep(0)


class _Sink:
    def on_messages(self, batch: object) -> None:
        pass

    def on_resubscribed(self, channels: object) -> None:
        pass


def history(broker: MemoryBroker, dispatched: list[tuple[str, list[Envelope]]]) -> History:
    return History(
        broker,
        RULES,
        dispatch=lambda channel, messages, state: dispatched.append((channel, messages)),
        recovery_max_messages=3,
    )


async def test_a_channel_without_history_is_refused_with_history_off() -> None:
    """Reading a plain channel's history raises HISTORY_OFF with the setting to change."""
    with pytest.raises(ProtocolError) as caught:
        await history(MemoryBroker(), []).read("plain", None, 10)
    assert caught.value.code == HISTORY_OFF and "history_size" in caught.value.message


async def test_a_position_the_history_no_longer_holds_is_refused() -> None:
    """A read from a position of another epoch, or past the top, is UNRECOVERABLE_POSITION."""
    broker = MemoryBroker()
    await filled(broker, "h.1", 3)
    reads = history(broker, [])
    page = await reads.read("h.1", None, 10)
    assert [m.offset for m in page.messages] == [1, 2, 3]
    for since in (Position("other", 1), Position(page.epoch, 9)):
        with pytest.raises(ProtocolError) as caught:
            await reads.read("h.1", since, 10)
        assert caught.value.code == UNRECOVERABLE_POSITION
    assert [m.offset for m in (await reads.read("h.1", Position(page.epoch, 1), 10)).messages] == [
        2,
        3,
    ]


async def test_an_unreachable_broker_is_unavailable_with_retry_later() -> None:
    """A broker that cannot be read makes the read UNAVAILABLE, saying to retry."""
    broker = RecordingBroker()

    async def down(*args: object, **kwargs: object) -> object:
        raise BrokerUnavailable("Redis is unreachable")

    broker.read_history = down  # type: ignore[method-assign]
    with pytest.raises(ProtocolError) as caught:
        await history(broker, []).read("h.1", None, 1)
    assert caught.value.code == UNAVAILABLE and "retry later" in caught.value.message


async def test_a_join_read_beyond_the_recovery_bound_is_not_recovered() -> None:
    """Recovery replays at most recovery_max_messages; a member that missed more is told
    recovered False and gets no partial replay."""
    broker = MemoryBroker()
    await filled(broker, "h.2", 5)
    reads = history(broker, [])
    epoch = (await reads.read("h.2", None, 1)).epoch
    near = await reads.read_for_join("h.2", OPTIONS, Position(epoch, 3), 0)
    assert near.recovered is True and [m.offset for m in near.replay] == [4, 5]
    far = await reads.read_for_join("h.2", OPTIONS, Position(epoch, 0), 0)
    assert far.recovered is False and far.replay == []
    backlog = await reads.read_for_join("h.2", OPTIONS, None, 2)
    assert backlog.recovered is None and [m.offset for m in backlog.replay] == [4, 5]
    assert backlog.position == Position(epoch, 5)


async def test_a_repair_reads_the_missed_range_and_dispatches_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a resubscribe, the repair reads what followed the last delivered offset, and
    hands it to dispatch in order, counting what the history gave back."""
    broker = MemoryBroker()
    await filled(broker, "h.3", 4)
    dispatched: list[tuple[str, list[Envelope]]] = []
    reads = history(broker, dispatched)
    state = BrokerChannel(OPTIONS)
    assert state.sequence is not None
    epoch = (await reads.read("h.3", None, 1)).epoch
    state.sequence.accept([Envelope(b"1", 0, 1, epoch)])
    reads.repair_after_resubscribe("h.3", state)
    for _ in range(20):
        if dispatched:
            break
        await asyncio.sleep(0.01)
    [(channel, messages)] = dispatched
    assert channel == "h.3" and [m.offset for m in messages] == [2, 3, 4]
    assert reads.num_repaired == 3


async def test_a_repair_gives_up_with_a_gap_when_the_history_stays_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When every retry finds the broker unreachable, the held range becomes one gap marker
    (never a silent loss)."""
    monkeypatch.setattr(history_module, "REPAIR_RETRY_DELAYS_S", (0.0, 0.0))
    broker = RecordingBroker()

    async def down(*args: object, **kwargs: object) -> object:
        raise BrokerUnavailable("Redis is unreachable")

    broker.read_history = down  # type: ignore[method-assign]
    dispatched: list[tuple[str, list[Envelope]]] = []
    reads = history(broker, dispatched)
    state = BrokerChannel(OPTIONS)
    assert state.sequence is not None
    state.sequence.accept([Envelope(b"1", 0, 1, "e")])
    reads.repair_after_resubscribe("h.4", state)
    held, _ = state.sequence.accept([Envelope(b"3", 0, 3, "e")])
    assert held == []  # held while the repair runs
    for _ in range(50):
        if dispatched:
            break
        await asyncio.sleep(0.01)
    [(_, messages)] = dispatched
    assert [(m.kind, m.offset) for m in messages] == [(GAP, 2), (TEXT, 3)]
