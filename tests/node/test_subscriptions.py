"""The subscription lifecycle (``hub.node.subscriptions``): one SUBSCRIBE per channel,
shared by concurrent joins, rolled back on failure, and a delayed UNSUBSCRIBE; through the
node's joins and directly. Against the memory broker, no sockets."""

from __future__ import annotations

import asyncio

import pytest
from support.node import DELAY_S, FakeMember, RecordingBroker, calls

from hub.core.namespaces import ChannelOptions, ChannelRules
from hub.node import Node
from hub.node.state import PendingJoin
from hub.node.subscriptions import Subscriptions


async def test_the_first_subscriber_subscribes_the_broker_once(node: Node) -> None:
    """Two clients on one channel cost one SUBSCRIBE; a message reaches both."""
    a, b = FakeMember(), FakeMember()
    await node.join("news", a)
    await node.join("news", b)
    assert calls(node) == [("subscribe", "news")]
    assert node.is_subscribed("news") and a.channels == {"news"}
    node.publish("news", b"hi")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert a.received == b.received == [b"\x81\x02hi"]


async def test_a_failed_subscribe_rolls_back(node: Node) -> None:
    """A join whose SUBSCRIBE fails leaves nothing behind, and the next join tries again."""
    broker = node.broker
    assert isinstance(broker, RecordingBroker)
    broker.fail_next = True
    client = FakeMember()
    with pytest.raises(ConnectionError):
        await node.join("news", client)
    assert client.channels == set() and node.num_channels == 0
    assert not node.is_subscribed("news")
    await node.join("news", client)
    assert node.is_subscribed("news") and calls(node) == [("subscribe", "news")] * 2


async def test_the_unsubscribe_is_delayed(node: Node) -> None:
    """The last client leaving unsubscribes the broker only after the delay."""
    client = FakeMember()
    await node.join("news", client)
    node.leave("news", client)
    assert node.is_subscribed("news") and client.channels == set()
    await asyncio.sleep(DELAY_S * 3)
    assert calls(node) == [("subscribe", "news"), ("unsubscribe", "news")]
    assert not node.is_subscribed("news")


async def test_a_rejoin_during_the_delay_keeps_the_subscription(node: Node) -> None:
    """A client that comes back within the delay finds the channel subscribed: no churn."""
    first, second = FakeMember(), FakeMember()
    await node.join("news", first)
    node.leave("news", first)
    await node.join("news", second)
    await asyncio.sleep(DELAY_S * 3)
    assert calls(node) == [("subscribe", "news")]
    assert node.is_subscribed("news")


async def test_concurrent_joins_share_one_subscribe(node: Node) -> None:
    """Joins that arrive while the SUBSCRIBE is in flight wait for it; none returns early."""
    broker = node.broker
    assert isinstance(broker, RecordingBroker)
    broker.gate = asyncio.Event()
    clients = [FakeMember() for _ in range(3)]
    joins = [asyncio.create_task(node.join("news", c)) for c in clients]
    await asyncio.sleep(0.01)
    assert not any(j.done() for j in joins)
    broker.gate.set()
    await asyncio.gather(*joins)
    assert calls(node) == [("subscribe", "news")]
    assert node.num_subscriptions == 3


async def test_a_failed_subscribe_makes_concurrent_joiners_try_again(node: Node) -> None:
    """When the in-flight SUBSCRIBE fails, a joiner waiting on it subscribes for itself."""
    broker = node.broker
    assert isinstance(broker, RecordingBroker)
    broker.gate = asyncio.Event()
    broker.fail_next = True
    first, second = FakeMember(), FakeMember()
    failing = asyncio.create_task(node.join("news", first))
    await asyncio.sleep(0)
    waiting = asyncio.create_task(node.join("news", second))
    await asyncio.sleep(0.01)
    broker.gate.set()
    with pytest.raises(ConnectionError):
        await failing
    await waiting
    assert node.is_subscribed("news") and second.channels == {"news"}
    assert first.channels == set() and node.num_subscriptions == 1


async def test_a_rejoin_during_the_unsubscribe_subscribes_again(node: Node) -> None:
    """A join that lands while the UNSUBSCRIBE is in flight waits for it, then subscribes."""
    client = FakeMember()
    await node.join("news", client)
    node.leave("news", client)
    await asyncio.sleep(DELAY_S * 1.5)  # the expiry fired; the unsubscribe task is running
    await node.join("news", client)
    assert node.is_subscribed("news")
    assert calls(node)[-1] == ("subscribe", "news")


async def test_a_prepared_channel_expires_when_no_client_joins(node: Node) -> None:
    """A channel subscribed for a handshake that never completed is unsubscribed later."""
    await node.prepare("lonely")
    assert node.is_subscribed("lonely")
    await asyncio.sleep(DELAY_S * 3)
    assert not node.is_subscribed("lonely")
    assert calls(node) == [("subscribe", "lonely"), ("unsubscribe", "lonely")]


async def test_a_held_record_is_not_unsubscribed_while_a_join_is_pending() -> None:
    """``hold`` cancels the delayed UNSUBSCRIBE, and ``release`` keeps the subscription while
    a join is still pending on the channel; the last release schedules it again."""
    broker = RecordingBroker()
    members: set[str] = set()
    subs = Subscriptions(
        broker,
        ChannelRules((), ChannelOptions()),
        has_members=members.__contains__,
        unsubscribe_delay_s=DELAY_S,
    )
    await subs.ensure("news")
    subs.release("news")  # nobody local: the UNSUBSCRIBE is scheduled
    state = subs.hold("news")
    assert state.expiry is None
    join = PendingJoin("news", FakeMember())
    state.joiners.append(join)
    subs.release("news")
    await asyncio.sleep(DELAY_S * 3)
    assert subs.is_subscribed("news") and broker.calls == [("subscribe", "news")]
    state.joiners.remove(join)
    subs.release("news")
    await asyncio.sleep(DELAY_S * 3)
    assert not subs.is_subscribed("news") and subs.get("news") is None
    assert broker.calls == [("subscribe", "news"), ("unsubscribe", "news")]


async def test_a_record_whose_subscribe_failed_is_forgotten() -> None:
    """A failed SUBSCRIBE leaves no record behind for a channel nobody holds."""
    broker = RecordingBroker()
    broker.fail_next = True
    subs = Subscriptions(
        broker, ChannelRules((), ChannelOptions()), has_members=lambda c: False,
        unsubscribe_delay_s=DELAY_S,
    )  # fmt: skip
    with pytest.raises(ConnectionError):
        await subs.ensure("news")
    assert subs.get("news") is None and not subs.is_subscribed("news")
