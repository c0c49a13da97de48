"""The Redis presence queue (``hub.brokers.redis.presence``), against a real redis-server:
coalescing, its own bound, and never a share of the publish budget."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence

import pytest
from support import RedisServer, async_wait_until, free_port

from hub.brokers import BrokerOptions
from hub.brokers.redis import RedisBroker
from hub.core.envelope import EVENT, decode_envelope


class Events:
    """A broker's handler that keeps the payloads of the presence events it is given."""

    def __init__(self) -> None:
        self.got: list[bytes] = []

    def on_messages(self, batch: Sequence[tuple[str, bytes]]) -> None:
        decoded = (decode_envelope(payload) for _, payload in batch)
        self.got += [m.payload for m in decoded if m.kind == EVENT]

    def on_resubscribed(self, channels: Collection[str]) -> None:
        pass


async def start(broker: RedisBroker) -> Events:
    handler = Events()
    await broker.start(handler)
    await async_wait_until(lambda: broker.is_ready, 10, "broker ready")
    return handler


@pytest.fixture
async def broker(redis_server: RedisServer) -> AsyncIterator[tuple[RedisBroker, Events]]:
    options = BrokerOptions(
        prefix=f"pq{free_port()}:", publish_buffer_messages=50, presence_buffer_entries=50
    )
    broker = RedisBroker(url=redis_server.url, options=options)
    handler = await start(broker)
    await broker.subscribe("room")
    yield broker, handler
    await broker.close()


async def members(broker: RedisBroker) -> list[tuple[str, str | None]]:
    return sorted(await broker.presence().read("room"))


async def test_a_join_and_leave_that_meet_unwritten_cancel_out(
    broker: tuple[RedisBroker, Events],
) -> None:
    """Joined and left in one loop turn: no event at all, and the member is not listed; a
    join that stays is announced once, after its write."""
    broker, handler = broker
    presence = broker.presence()
    presence.add("room", "c1", "alice", 30.0, announce=True)
    presence.remove("room", "c1", "alice", announce=True)
    presence.add("room", "c2", "bob", 30.0, announce=True)
    await async_wait_until(lambda: len(handler.got) == 1, 10, "bob's join")
    assert handler.got == [b'j{"client":"c2","user":"bob"}']
    assert await members(broker) == [("c2", "bob")]
    presence.remove("room", "c2", "bob", announce=True)
    await async_wait_until(lambda: len(handler.got) == 2, 10, "bob's leave")
    assert handler.got[1] == b'l{"client":"c2","user":"bob"}'
    assert await members(broker) == []


async def test_presence_has_its_own_bound_and_takes_nothing_of_the_publish_budget(
    broker: tuple[RedisBroker, Events],
) -> None:
    """Far more joins than either buffer holds, in one turn: the presence queue drops what
    passes its own bound (counted, and its channel handed back to be written again), and
    every publish of that turn is accepted."""
    broker, handler = broker
    presence = broker.presence()
    for i in range(200):
        presence.add("room", f"c{i}", None, 30.0, announce=True)
    assert broker.stats.num_presence_dropped == 150
    assert presence.take_dropped() == {"room"} and presence.take_dropped() == set()
    assert all(broker.publish("room", b"m%d" % i) for i in range(50))
    assert broker.stats.num_dropped == 0
    await async_wait_until(lambda: len(handler.got) == 50, 10, "the 50 joins it kept")
    assert len(await members(broker)) == 50


async def test_writes_held_while_redis_is_away_go_out_once_it_is_back(
    own_redis: RedisServer,
) -> None:
    """A member added and another removed during an outage: both are written after it."""
    broker = RedisBroker(url=own_redis.url, options=BrokerOptions(prefix="held:"))
    try:
        await start(broker)
        presence = broker.presence()
        presence.add("room", "gone", None, 30.0)
        presence.add("room", "stays", None, 30.0)
        await async_wait_until(
            lambda: own_redis.client().hlen("held:{room}:presence") == 2, 10, "the writes"
        )
        own_redis.stop()
        await async_wait_until(lambda: not broker.is_ready, 10, "the outage")
        presence.remove("room", "gone")
        presence.add("room", "new", None, 30.0)
        own_redis.start()
        await async_wait_until(lambda: broker.is_ready, 10, "the reconnect")
        # The restart lost everything ("stays" too: the node writes it again on resubscribe);
        # the queue's word on "gone" and "new" is written.
        await async_wait_until(
            lambda: own_redis.client().hkeys("held:{room}:presence") == [b"new"],
            10,
            "the held writes",
        )
    finally:
        await broker.close()
