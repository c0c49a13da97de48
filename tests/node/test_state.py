"""What the node keeps per channel and per join (``hub.node.state``)."""

from __future__ import annotations

from support.node import FakeMember

from hub.core.namespaces import ChannelOptions
from hub.node.state import BrokerChannel, PendingJoin


def test_a_history_channel_keeps_a_sequence_and_a_plain_one_does_not() -> None:
    """Only channels with history pay for a delivery order."""
    assert BrokerChannel(ChannelOptions(history_size=1, history_ttl_s=1)).sequence is not None
    assert BrokerChannel(ChannelOptions()).sequence is None


def test_a_record_is_idle_only_when_nothing_is_set() -> None:
    """A subscribed record, or one with a pending join, is not idle."""
    state = BrokerChannel(ChannelOptions())
    assert state.is_idle
    state.is_subscribed = True
    assert not state.is_idle
    state.is_subscribed = False
    state.joiners.append(PendingJoin("c", FakeMember()))
    assert not state.is_idle


def test_a_pending_join_starts_with_no_position_and_nothing_kept() -> None:
    """Before its read, a join has the empty position, no replay, and no recovery verdict."""
    join = PendingJoin("c", FakeMember())
    assert (join.position.epoch, join.position.offset) == ("", 0)
    assert join.replay == [] and join.live == [] and join.recovered is None
