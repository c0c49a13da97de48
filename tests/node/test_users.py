"""Users (``hub.node.users``): the user → connections index, and each server API command as
one instance carries it out (disconnect, unsubscribe, a server-side subscribe through the
join routine, connections, info). On the memory broker, which is one instance."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from support.node import DELAY_S, FakeMember, FakeStore, RecordingBroker, V1Member

from hub.core.errors import CloseCode
from hub.core.namespaces import ChannelOptions, ChannelRules, Namespace
from hub.node import Node
from hub.node.users import RAW, SSE, V1

HISTORY = ChannelOptions(history_size=10, history_ttl_s=60)


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    rules = ChannelRules((Namespace("h.*", HISTORY),), ChannelOptions())
    node = Node(
        broker=RecordingBroker(),
        presence=FakeStore(),
        max_buffered_bytes=1 << 20,
        unsubscribe_delay_s=DELAY_S,
        rules=rules,
        version="9.9",
    )
    await node.start()
    yield node
    await node.close()


def of(user: str | None, cls: type[FakeMember] = V1Member) -> FakeMember:
    member = cls()
    member.user = user
    return member


def frames(member: FakeMember) -> list[dict[str, object]]:
    return [json.loads(reply) for reply, _ in member.written if reply is not None]


async def test_disconnect_closes_every_connection_of_the_user_only(node: Node) -> None:
    alice1, alice2, bob, anonymous = of("alice"), of("alice", FakeMember), of("bob"), of(None)
    for member, transport in ((alice1, V1), (alice2, RAW), (bob, V1), (anonymous, V1)):
        node.users.connected(member, transport)
    replies = await node.users.disconnect("alice", 4100, "bye")
    assert replies.count() == 2 and replies.missing == []
    assert alice1.closed == alice2.closed == (4100, "bye")
    assert bob.closed is None and anonymous.closed is None
    assert (await node.users.disconnect("nobody", 4009, "")).count() == 0
    node.users.disconnected(alice1)
    node.users.disconnected(alice2)
    assert node.users.local("alice") == {}
    assert node.users.num_connections == 2 and node.users.num_users == 1


async def test_a_server_side_subscribe_joins_and_tells_hub_v1_connections(node: Node) -> None:
    """Through the join routine: the frame carries a history channel's position, and the
    channel's messages follow; raw and SSE connections (one channel each) are not reached."""
    v1, raw, sse = of("alice"), of("alice", FakeMember), of("alice", FakeMember)
    node.users.connected(v1, V1)
    node.users.connected(raw, RAW)
    node.users.connected(sse, SSE)
    node.publish("h.1", b"before")
    await asyncio.sleep(DELAY_S)
    replies = await node.users.subscribe("alice", "h.1")
    assert replies.count() == 1
    [frame] = frames(v1)
    assert frame["type"] == "subscribed" and frame["server"] is True
    assert frame["channels"] == ["h.1"]
    positions = frame["positions"]
    assert isinstance(positions, dict) and positions["h.1"]["offset"] == 1
    assert v1.channels == {"h.1"} and not raw.channels and not sse.channels
    # Already subscribed: reached again, told nothing twice.
    assert (await node.users.subscribe("alice", "h.1")).count() == 1
    assert len(frames(v1)) == 1


async def test_a_connection_that_closes_during_the_join_is_not_added(node: Node) -> None:
    broker = node.broker
    assert isinstance(broker, RecordingBroker)
    member = of("alice")
    node.users.connected(member, V1)
    broker.gate = asyncio.Event()
    subscribing = asyncio.create_task(node.users.subscribe("alice", "news"))
    await asyncio.sleep(DELAY_S)
    node.users.disconnected(member)
    broker.gate.set()
    assert (await subscribing).count() == 0
    assert not member.channels and "news" not in dict(node.channels())


async def test_unsubscribe_tells_hub_v1_and_closes_one_channel_connections(node: Node) -> None:
    v1, raw, other = of("alice"), of("alice", FakeMember), of("alice")
    for member, transport in ((v1, V1), (raw, RAW), (other, V1)):
        node.users.connected(member, transport)
    await node.join("news", v1)
    await node.join("news", raw)
    assert (await node.users.unsubscribe("alice", "news")).count() == 2
    assert frames(v1) == [{"type": "unsubscribed", "channel": "news", "server": True}]
    assert not v1.channels and not raw.channels
    assert raw.closed is not None and raw.closed[0] == CloseCode.DISCONNECTED
    assert other.closed is None and frames(other) == []


async def test_connections_and_info(node: Node) -> None:
    alice = of("alice")
    node.users.connected(alice, V1)
    node.users.connected(of(None), V1)
    await node.join("news", alice)
    replies = await node.users.connections("alice")
    [reply] = replies.replies
    assert reply["instance"] == node.presence.name and reply["count"] == 1
    assert reply["connections"] == [
        {"client": node.presence.client_id(alice), "transport": "hub.v1", "channels": ["news"]}
    ]
    [info] = (await node.users.info()).replies
    assert info["version"] == "9.9" and info["connections"] == 2 and info["users"] == 1
    assert info["channels"] == 1 and info["subscriptions"] == 1
    assert isinstance(info["uptime_s"], float)
