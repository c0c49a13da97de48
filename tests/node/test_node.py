"""The node (``hub.node.node``): the one join routine (prepare, commit, abort), the fan-out
of broker batches, presence events through the wire formats, and the publish policy. Against
the memory broker, no sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from support.node import DELAY_S, FakeMember, FakeStore, RecordingBroker, V1Member

from hub.core.auth import Grant
from hub.core.envelope import encode_event
from hub.core.errors import BrokerUnavailable, CloseCode
from hub.core.namespaces import ChannelOptions, ChannelRules, Namespace
from hub.core.policy import PublishPolicy
from hub.core.protocol import FORBIDDEN, RATE_LIMITED
from hub.core.ratelimit import TokenBucket
from hub.core.sequence import Position
from hub.node import Node


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
        watcher, client = FakeMember(), FakeMember()
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


HISTORY = ChannelOptions(history_size=10, history_ttl_s=60)
RULES = ChannelRules(
    (
        Namespace("h.*", HISTORY),
        Namespace("room.*", ChannelOptions(presence=True, join_leave=True)),
    ),
    ChannelOptions(),
)


@pytest.fixture
async def ruled() -> AsyncIterator[tuple[Node, FakeStore]]:
    broker = RecordingBroker()
    store = FakeStore(broker.publish)
    node = Node(broker=broker, presence=store, max_buffered_bytes=1 << 20, rules=RULES)
    await node.start()
    yield node, store
    await node.close()


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_commit_writes_the_reply_and_every_replay_in_one_call(
    ruled: tuple[Node, FakeStore],
) -> None:
    """A join of a history and a plain channel: the commit writes the reply and then the
    history's backlog, in one write_now, and only then is the member in both channels."""
    node, _ = ruled
    for text in (b"a", b"b"):
        node.publish("h.1", text)
    await turns()
    member = FakeMember()
    joining = await node.prepare_join(member, ["h.1", "plain"], last=5)
    assert member.channels == set() and member.written == []
    position, recovered = joining.positions["h.1"]
    assert position.offset == 2 and recovered is None and "plain" not in joining.positions
    joining.commit(b"ack")
    [(reply, batches)] = member.written
    assert reply == b"ack"
    assert [(c, [m.payload for m in ms]) for c, ms in batches] == [("h.1", [b"a", b"b"])]
    assert member.channels == {"h.1", "plain"}


async def test_live_messages_during_a_join_follow_its_reply(ruled: tuple[Node, FakeStore]) -> None:
    """What arrives on a plain channel between the prepare and the commit is kept and written
    after the reply, not before it and not lost."""
    node, _ = ruled
    member = FakeMember()
    joining = await node.prepare_join(member, ["plain"])
    node.publish("plain", b"meanwhile")
    await turns()
    assert member.received == []
    joining.commit(b"ack")
    [(reply, [(channel, live)])] = member.written
    assert reply == b"ack" and channel == "plain" and [m.payload for m in live] == [b"meanwhile"]


async def test_a_failed_join_rolls_back_every_channel(ruled: tuple[Node, FakeStore]) -> None:
    """When one channel's SUBSCRIBE fails, the channels prepared before it are rolled back:
    no member, no pending join, and no subscription kept for nobody."""
    node, _ = ruled
    broker = node.broker
    assert isinstance(broker, RecordingBroker)
    member = FakeMember()
    await node.prepare_join(member, ["a"])  # subscribed, then abandoned below
    broker.fail_next = True
    with pytest.raises(ConnectionError):
        await node.prepare_join(member, ["b", "c"])
    assert member.channels == set() and node.num_subscriptions == 0
    assert node.subscriptions.get("b") is None and node.subscriptions.get("c") is None


async def test_an_aborted_join_unsubscribes_after_the_delay() -> None:
    """An abandoned join (the SSE client went away before its preamble) leaves its channel to
    the delayed UNSUBSCRIBE."""
    node = Node(broker=RecordingBroker(), max_buffered_bytes=1 << 20, unsubscribe_delay_s=DELAY_S)
    await node.start()
    try:
        joining = await node.prepare_join(FakeMember(), ["gone"])
        joining.abort()
        assert node.is_subscribed("gone")
        await asyncio.sleep(DELAY_S * 3)
        assert not node.is_subscribed("gone")
    finally:
        await node.close()


async def test_recovery_replays_what_follows_the_position(ruled: tuple[Node, FakeStore]) -> None:
    """A join that recovers from offset 1 gets 2 and 3, and says recovered; one from an epoch
    the channel never had says not recovered and replays nothing."""
    node, _ = ruled
    for text in (b"1", b"2", b"3"):
        node.publish("h.r", text)
    await turns()
    epoch = (await node.history.read("h.r", None, 1)).epoch
    member = FakeMember()
    joining = await node.prepare_join(member, ["h.r"], recover={"h.r": Position(epoch, 1)})
    assert joining.positions["h.r"][1] is True
    joining.commit(None)
    [(_, [(_, replay)])] = member.written
    assert [m.offset for m in replay] == [2, 3]
    other = FakeMember()
    joining = await node.prepare_join(other, ["h.r"], recover={"h.r": Position("nope", 1)})
    assert joining.positions["h.r"][1] is False
    joining.commit(None)
    assert other.written == []


async def test_presence_events_reach_only_listeners_through_their_format(
    ruled: tuple[Node, FakeStore],
) -> None:
    """Join and leave events of a presence channel go to the members that listen, as hub.v1
    event frames built by the V1 encoder; members that did not ask get nothing."""
    node, store = ruled
    listener, quiet = V1Member(), V1Member()
    await node.join("room.1", listener)
    await node.join("room.1", quiet)
    assert node.presence.listen("room.1", listener)
    alice = FakeMember()
    alice.user = "alice"
    await node.join("room.1", alice)
    await turns()
    assert len(store.members["room.1"]) == 3
    [frame] = listener.received
    assert b'"type":"join"' in frame and b'"user":"alice"' in frame
    assert quiet.received == []


async def test_events_are_never_delivered_as_messages(ruled: tuple[Node, FakeStore]) -> None:
    """An event envelope on a channel with join/leave reaches no member as a message."""
    node, _ = ruled
    member = FakeMember()
    await node.join("room.2", member)
    node.broker.publish("room.2", encode_event(True, b'{"client":"x","user":null}'))
    await turns()
    assert member.received == []


async def test_a_slow_member_is_evicted_and_closed_with_4008() -> None:
    """A member whose unsent bytes pass the bound leaves every channel and is closed with
    4008; the other member of the channel still gets the message."""

    class Slow(FakeMember):
        def send_batch(self, data: bytes) -> int:
            super().send_batch(data)
            return 1 << 30

    node = Node(broker=RecordingBroker(), max_buffered_bytes=1024)
    await node.start()
    try:
        slow, ok = Slow(), FakeMember()
        for member in (slow, ok):
            await node.join("a", member)
        await node.join("b", slow)
        node.publish("a", b"x")
        await turns()
        assert slow.closed == (CloseCode.SLOW_CONSUMER, "slow consumer")
        assert slow.channels == set() and node.num_slow_consumers == 1
        assert ok.received == [b"\x81\x01x"]
    finally:
        await node.close()


async def test_a_join_fails_whole_when_the_history_is_unreachable(
    ruled: tuple[Node, FakeStore],
) -> None:
    """BrokerUnavailable from the history read propagates, and the join leaves nothing."""
    node, _ = ruled
    broker = node.broker

    async def down(*args: object, **kwargs: object) -> object:
        raise BrokerUnavailable("Redis is unreachable")

    broker.read_history = down  # type: ignore[method-assign]
    member = FakeMember()
    with pytest.raises(BrokerUnavailable):
        await node.prepare_join(member, ["h.down"])
    assert member.channels == set() and node.subscriptions.get("h.down").joiners == []  # type: ignore[union-attr]
