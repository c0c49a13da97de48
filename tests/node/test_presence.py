"""Presence for the node (``hub.node.presence``): writes on join and leave, announced
events, listeners, reads, the rewrite after a resubscribe, and the heartbeat."""

from __future__ import annotations

import asyncio

import pytest
from support.node import FakeMember, FakeStore

from hub.core.envelope import decode_envelope
from hub.core.errors import ProtocolError
from hub.core.namespaces import ChannelOptions, ChannelRules, Namespace
from hub.core.protocol import PRESENCE_OFF, UNAVAILABLE
from hub.core.registry import Registry
from hub.node.presence import Presence
from hub.node.state import Member

RULES = ChannelRules(
    (
        Namespace("room.*", ChannelOptions(presence=True, join_leave=True)),
        Namespace("seen.*", ChannelOptions(presence=True)),
    ),
    ChannelOptions(),
)


def presence(
    store: FakeStore | None, published: list[tuple[str, bytes]], ttl_s: float = 60.0
) -> tuple[Presence, Registry[Member]]:
    """A Presence on ``store``, whose events land in ``published``."""
    registry: Registry[Member] = Registry()
    if store is not None:
        store.events = published
    return Presence(store, RULES, registry=registry, ttl_s=ttl_s), registry


def test_a_join_and_leave_are_written_and_announced() -> None:
    """On a join/leave channel, a member is added to the store and a join event published;
    on leaving, removed and a leave event published. Elsewhere nothing is written."""
    store, published = FakeStore(), []
    p, _ = presence(store, published)
    member = FakeMember()
    member.user = "alice"
    p.joined("room.1", member)
    cid = p.client_id(member)
    assert store.members["room.1"] == {cid: "alice"}
    p.left("room.1", member)
    assert store.members["room.1"] == {}
    kinds = [decode_envelope(payload).payload[:1] for _, payload in published]
    assert kinds == [b"j", b"l"]
    p.joined("plain", FakeMember())
    assert "plain" not in store.members and len(published) == 2


def test_presence_without_join_leave_writes_but_announces_nothing() -> None:
    """A presence-only channel keeps its members, and publishes no events."""
    store, published = FakeStore(), []
    p, _ = presence(store, published)
    p.joined("seen.1", FakeMember())
    assert len(store.members["seen.1"]) == 1 and published == []


def test_ids_are_numbered_once_per_member_and_name_the_process() -> None:
    """A member's id is this process's name and a number given on first use, stable after."""
    p, _ = presence(FakeStore(), [])
    a, b = FakeMember(), FakeMember()
    assert p.client_id(a) == p.client_id(a) == f"{p.name}.1"
    assert p.client_id(b) == f"{p.name}.2"


def test_only_join_leave_channels_take_listeners() -> None:
    """listen() is refused on channels without join/leave events, and a listener is
    forgotten when it leaves."""
    p, _ = presence(FakeStore(), [])
    member = FakeMember()
    assert not p.listen("seen.1", member) and p.listeners("seen.1") is None
    assert p.listen("room.1", member) and p.listeners("room.1") == {member: None}
    p.left("room.1", member)
    assert p.listeners("room.1") is None


async def test_reads_are_refused_without_presence_or_a_store() -> None:
    """A channel without presence, or a node without a store, answers PRESENCE_OFF; a store
    that is down answers UNAVAILABLE; otherwise members and user counts."""
    store = FakeStore()
    p, _ = presence(store, [])
    with pytest.raises(ProtocolError) as caught:
        await p.read("plain")
    assert caught.value.code == PRESENCE_OFF
    alone, _ = presence(None, [])
    with pytest.raises(ProtocolError) as caught:
        await alone.read("room.1")
    assert caught.value.code == PRESENCE_OFF
    a, b = FakeMember(), FakeMember()
    a.user = b.user = "bob"
    p.joined("room.1", a)
    p.joined("room.1", b)
    answer = await p.read("room.1")
    assert answer["num_clients"] == 2 and answer["num_users"] == 1
    store.is_down = True
    with pytest.raises(ProtocolError) as caught:
        await p.read("room.1")
    assert caught.value.code == UNAVAILABLE


def test_a_rewrite_adds_the_local_members_again() -> None:
    """After the broker was away, every local member of a presence channel is written again."""
    store = FakeStore()
    p, registry = presence(store, [])
    member = FakeMember()
    registry.add("seen.2", member)
    p.rewrite(["seen.2", "plain"])
    assert store.members == {"seen.2": {p.client_id(member): None}}


async def test_the_heartbeat_names_the_local_presence_channels() -> None:
    """The heartbeat refreshes one entry per local presence channel, about every ttl/3."""
    store = FakeStore()
    p, registry = presence(store, [], ttl_s=0.06)
    registry.add("seen.3", FakeMember())
    registry.add("plain", FakeMember())
    p.start()
    try:
        await asyncio.sleep(0.1)
    finally:
        p.close()
    assert store.heartbeats and all(h == ["seen.3"] for h in store.heartbeats)
