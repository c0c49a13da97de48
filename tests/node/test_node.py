"""Node's subscription lifecycle and publish policy, against the memory broker (no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hub.brokers.memory import MemoryBroker
from hub.core.auth import Grant
from hub.core.envelope import Envelope
from hub.core.formats import RAW
from hub.core.namespaces import ChannelOptions, ChannelRules
from hub.core.policy import PublishPolicy
from hub.core.protocol import FORBIDDEN, RATE_LIMITED
from hub.core.ratelimit import TokenBucket
from hub.node import Node

DELAY_S = 0.05


class RecordingBroker(MemoryBroker):
    """The memory broker, recording each (un)subscribe; it can hold or fail a SUBSCRIBE."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.gate: asyncio.Event | None = None
        self.fail_next = False

    async def subscribe(self, channel: str) -> None:
        self.calls.append(("subscribe", channel))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("Redis is unreachable")
        await super().subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.calls.append(("unsubscribe", channel))
        await super().unsubscribe(channel)


class FakeClient:
    """A subscriber that keeps what it is sent."""

    format = RAW
    number = 0
    user = None

    def __init__(self) -> None:
        self.channels: set[str] = set()
        self.received: list[bytes] = []
        self.written: list[tuple[bytes | None, list[tuple[str, list[Envelope]]]]] = []
        self.closed: tuple[int, str] | None = None

    def send_batch(self, data: bytes) -> int:
        self.received.append(data)
        return 0

    def send_messages(self, channel: str, messages: list[Envelope]) -> int:
        raise AssertionError("a RAW client is sent shared bytes")

    def write_now(self, reply: bytes | None, batches: list[tuple[str, list[Envelope]]]) -> None:
        self.written.append((reply, batches))

    def disconnect(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    node = Node(broker=RecordingBroker(), max_buffered_bytes=1 << 20, unsubscribe_delay_s=DELAY_S)
    await node.start()
    yield node
    await node.close()


def calls(node: Node) -> list[tuple[str, str]]:
    broker = node.broker
    assert isinstance(broker, RecordingBroker)
    return broker.calls


async def test_the_first_subscriber_subscribes_the_broker_once(node: Node) -> None:
    """Two clients on one channel cost one SUBSCRIBE; a message reaches both."""
    a, b = FakeClient(), FakeClient()
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
    client = FakeClient()
    with pytest.raises(ConnectionError):
        await node.join("news", client)
    assert client.channels == set() and node.num_channels == 0
    assert not node.is_subscribed("news")
    await node.join("news", client)
    assert node.is_subscribed("news") and calls(node) == [("subscribe", "news")] * 2


async def test_the_unsubscribe_is_delayed(node: Node) -> None:
    """The last client leaving unsubscribes the broker only after the delay."""
    client = FakeClient()
    await node.join("news", client)
    node.leave("news", client)
    assert node.is_subscribed("news") and client.channels == set()
    await asyncio.sleep(DELAY_S * 3)
    assert calls(node) == [("subscribe", "news"), ("unsubscribe", "news")]
    assert not node.is_subscribed("news")


async def test_a_rejoin_during_the_delay_keeps_the_subscription(node: Node) -> None:
    """A client that comes back within the delay finds the channel subscribed: no churn."""
    first, second = FakeClient(), FakeClient()
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
    clients = [FakeClient() for _ in range(3)]
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
    first, second = FakeClient(), FakeClient()
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
    client = FakeClient()
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


async def test_publish_from_applies_the_policy_and_counts_rate_limits(node: Node) -> None:
    """Forbidden and rate-limited publishes are refused with their codes; only the latter
    count as rate limited, and neither reaches the broker."""
    grant = Grant(sub="alice", exp=None, subscribe=["*"], publish=["chat.*"])
    policy = PublishPolicy(grant, TokenBucket(1.0, 1, now=0.0))
    forbidden = node.publish_from(policy, "news", b"x")
    assert forbidden is not None and forbidden.code == FORBIDDEN
    assert node.publish_from(policy, "chat.1", b"x") is None
    limited = node.publish_from(policy, "chat.1", b"x")
    assert limited is not None and limited.code == RATE_LIMITED
    assert node.num_rate_limited == 1
    assert node.broker.stats.num_published == 1


async def test_a_replayed_message_still_in_flight_is_not_sent_twice() -> None:
    """A join reads the history while some of it is still on its way through pub/sub: when
    those messages then arrive live, the client, which had them in its replay, gets nothing
    twice."""
    rules = ChannelRules((), ChannelOptions(history_size=10, history_ttl_s=60))
    node = Node(broker=RecordingBroker(), max_buffered_bytes=1 << 20, rules=rules)
    await node.start()
    try:
        watcher, client = FakeClient(), FakeClient()
        await node.join("h", watcher)
        for text in (b"a", b"b", b"c"):
            node.publish("h", text)  # in the history now; live on the next loop turn
        joining = await node.prepare_join(client, ["h"], last=10)
        joining.commit(None)
        [(reply, [(channel, replay)])] = client.written
        assert reply is None and channel == "h"
        assert [m.offset for m in replay] == [1, 2, 3]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert len(watcher.received) == 1  # the live batch reached the others
        assert client.received == []  # and none of it again to the one that replayed it
        node.publish("h", b"d")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert len(client.received) == 1  # what follows its position comes live
    finally:
        await node.close()
