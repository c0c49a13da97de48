"""The Broker contract, run against the memory broker and a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from support import RedisServer, async_wait_until, free_port

from hub.brokers import Broker, BrokerOptions, Engines, PresenceManager, create_engines
from hub.brokers.redis import RedisBroker
from hub.core.envelope import decode_envelope, encode_envelope
from hub.core.errors import ConfigError
from hub.core.namespaces import ChannelOptions


class Sink:
    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.batches = 0
        self.num_resubscribed = 0

    def on_messages(self, batch: Sequence[tuple[str, bytes]]) -> None:
        self.batches += 1
        self.got.extend(batch)

    def on_resubscribed(self, channels: object) -> None:
        self.num_resubscribed += 1


@pytest.fixture(params=["memory", "redis"])
async def make_engines(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[Callable[[], Engines]]:
    brokers: list[Broker] = []
    options = BrokerOptions(prefix=f"contract{free_port()}:")

    def make() -> Engines:
        if request.param == "memory":
            engines = create_engines(None)
        else:
            engines = create_engines(redis_server.url, options)
        brokers.append(engines.broker)
        return engines

    yield make
    for b in brokers:
        await b.close()


@pytest.fixture
def make_broker(make_engines: Callable[[], Engines]) -> Callable[[], Broker]:
    return lambda: make_engines().broker


async def started(broker: Broker, sink: Sink) -> Broker:
    await broker.start(sink)
    await async_wait_until(lambda: broker.is_ready, 10, "broker ready")
    return broker


async def test_subscribed_channels_receive_in_order(make_broker: Callable[[], Broker]) -> None:
    """After subscribe returns, publishes on the channel arrive, in order, and others do not."""
    sink = Sink()
    broker = await started(make_broker(), sink)
    await broker.subscribe("a")
    for i in range(1000):
        assert broker.publish("a", b"%d" % i)
    broker.publish("b", b"not subscribed")
    await async_wait_until(lambda: len(sink.got) >= 1000, 10, "1000 messages")
    await asyncio.sleep(0.1)
    assert sink.got == [("a", b"%d" % i) for i in range(1000)]
    assert sink.batches < 1000, "messages that arrive together are handed over together"


async def test_unsubscribe_stops_delivery(make_broker: Callable[[], Broker]) -> None:
    sink = Sink()
    broker = await started(make_broker(), sink)
    await broker.subscribe("c")
    await broker.unsubscribe("c")
    await broker.subscribe("marker")
    broker.publish("c", b"gone")
    broker.publish("marker", b"end")
    await async_wait_until(lambda: ("marker", b"end") in sink.got, 10, "the marker")
    assert ("c", b"gone") not in sink.got


async def test_redis_brokers_reach_each_other(redis_server: RedisServer) -> None:
    """Two processes' brokers on one Redis: each hears the other's publishes."""
    prefix = f"pair{free_port()}:"
    sinks = [Sink(), Sink()]
    brokers = [
        RedisBroker(url=redis_server.url, options=BrokerOptions(prefix=prefix)) for _ in sinks
    ]
    try:
        for b, s in zip(brokers, sinks, strict=True):
            await started(b, s)
            await b.subscribe("x")
        brokers[0].publish("x", b"hello")
        for s in sinks:
            await async_wait_until(lambda s=s: s.got == [("x", b"hello")], 10, "delivery")
        assert redis_server.client().pubsub_numsub(f"{prefix}x")[0][1] == 2
    finally:
        for b in brokers:
            await b.close()


async def test_outage_buffer_is_bounded_and_counted(own_redis: RedisServer) -> None:
    """While Redis is down, publishes beyond the bound are dropped and counted; the rest wait."""
    broker = RedisBroker(
        url=own_redis.url,
        options=BrokerOptions(publish_buffer_messages=5, publish_buffer_bytes=1000),
    )
    sink = Sink()
    try:
        await started(broker, sink)
        own_redis.stop()
        await async_wait_until(lambda: not broker.is_ready, 10, "broker to notice the outage")
        accepted = [broker.publish("q", b"m%d" % i) for i in range(8)]
        assert accepted == [True] * 5 + [False] * 3
        assert broker.stats.num_dropped == 3
        assert not broker.publish("q", b"x" * 2000)  # over the byte bound
    finally:
        await broker.close()


async def test_not_ready_until_the_reader_is_back(own_redis: RedisServer) -> None:
    """After Redis restarts, the broker is ready only once its reader has reconnected too:
    a recovering subscribe on a ready process reads the history."""
    broker = RedisBroker(url=own_redis.url, options=BrokerOptions(prefix=f"rd{free_port()}:"))
    link = broker._link
    connect = link.connect
    reader_may_connect = asyncio.Event()
    reader_may_connect.set()

    async def gated(role: str, on_replies: Callable[..., None]) -> Any:
        if role == "reader":
            await reader_may_connect.wait()
        return await connect(role, on_replies)

    link.connect = gated  # type: ignore[method-assign]
    options = ChannelOptions(history_size=10, history_ttl_s=60)
    try:
        await started(broker, Sink())
        reader_may_connect.clear()
        own_redis.stop()
        await async_wait_until(lambda: not broker.is_ready, 10, "broker to notice the outage")
        own_redis.start()
        parts = (broker._publisher, broker._subscriber)
        await async_wait_until(
            lambda: all(p.conn is not None for p in parts), 10, "publisher and subscriber back"
        )
        await asyncio.sleep(0.5)  # the probe has had its chance to turn the broker ready
        assert not broker.is_ready
        reader_may_connect.set()
        await async_wait_until(lambda: broker.is_ready, 10, "broker ready")
        page = await broker.read_history("h", since=None, limit=5, options=options)
        assert page.messages == []
    finally:
        await broker.close()


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        create_engines("kafka://x")
    assert "HUB_REDIS_URL" in str(info.value)


async def test_presence_lists_who_is_there(make_engines: Callable[[], Engines]) -> None:
    """The presence manager beside each broker: added members are read back, removed ones
    are gone, and the heartbeat keeps them."""
    engines = make_engines()
    await started(engines.broker, Sink())
    presence: PresenceManager = engines.presence
    presence.add("room", "c1", "alice", 30.0)
    presence.add("room", "c2", None, 30.0)
    presence.heartbeat(["room"], 30.0)

    async def members() -> list[tuple[str, str | None]]:
        return sorted(await presence.read("room"))

    await until_read(members, [("c1", "alice"), ("c2", None)])
    presence.remove("room", "c1")
    await until_read(members, [("c2", None)])


async def until_read(
    read: Callable[[], Awaitable[object]], expected: object, timeout_s: float = 10
) -> None:
    """Until ``read()`` gives ``expected`` (presence writes are pipelined, reads are not)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (got := await read()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{got!r} != {expected!r}"
        await asyncio.sleep(0.02)


HISTORY = ChannelOptions(history_size=5, history_ttl_s=60)


async def test_history_publishes_carry_offsets_and_are_kept(
    make_broker: Callable[[], Broker],
) -> None:
    """A history publish arrives with offsets 1, 2, 3 … under one epoch, and the history
    holds the last history_size of them, readable since an offset or as the last N."""
    sink = Sink()
    broker = await started(make_broker(), sink)
    await broker.subscribe("h")
    for i in range(8):
        assert broker.publish("h", encode_envelope(b"m%d" % i), HISTORY)
    await async_wait_until(lambda: len(sink.got) >= 8, 10, "8 messages")
    got = [decode_envelope(payload) for _, payload in sink.got]
    assert [(m.offset, m.payload) for m in got] == [(i + 1, b"m%d" % i) for i in range(8)]
    epoch = got[0].epoch
    assert epoch and {m.epoch for m in got} == {epoch}
    page = await broker.read_history("h", since=5, limit=10, options=HISTORY)
    assert (page.epoch, page.top) == (epoch, 8)
    assert [(m.offset, m.payload) for m in page.messages] == [(6, b"m5"), (7, b"m6"), (8, b"m7")]
    last = await broker.read_history("h", since=None, limit=2, options=HISTORY)
    assert [m.offset for m in last.messages] == [7, 8]
    trimmed = await broker.read_history("h", since=0, limit=10, options=HISTORY)
    assert [m.offset for m in trimmed.messages] == [4, 5, 6, 7, 8]  # the last 5 only


async def test_an_untouched_channel_gets_an_epoch_and_no_messages(
    make_broker: Callable[[], Broker],
) -> None:
    broker = await started(make_broker(), Sink())
    first = await broker.read_history("fresh", since=None, limit=10, options=HISTORY)
    again = await broker.read_history("fresh", since=0, limit=10, options=HISTORY)
    assert first.top == 0 and first.messages == [] and first.epoch == again.epoch != ""


async def test_a_deleted_history_starts_a_new_epoch_at_offset_1(
    make_broker: Callable[[], Broker],
) -> None:
    """``delete_history`` (DELETE /api/history/<channel>): the messages, the epoch and the
    top offset are gone; the next publish starts over."""
    sink = Sink()
    broker = await started(make_broker(), sink)
    await broker.subscribe("d")
    for i in range(3):
        broker.publish("d", encode_envelope(b"m%d" % i), HISTORY)
    await async_wait_until(lambda: len(sink.got) >= 3, 10, "3 messages")
    old = decode_envelope(sink.got[0][1]).epoch
    assert await broker.delete_history("d") is True
    assert await broker.delete_history("d") is False  # nothing left
    broker.publish("d", encode_envelope(b"again"), HISTORY)
    await async_wait_until(lambda: len(sink.got) >= 4, 10, "the next message")
    fresh = decode_envelope(sink.got[3][1])
    assert fresh.offset == 1 and fresh.epoch != old
    page = await broker.read_history("d", since=None, limit=10, options=HISTORY)
    assert (page.epoch, page.top) == (fresh.epoch, 1)
    assert [m.payload for m in page.messages] == [b"again"]


async def test_a_lost_subscription_is_reported_once_it_is_back(redis_server: RedisServer) -> None:
    """After CLIENT KILL of its pub/sub connection, the broker resubscribes and says so."""
    sink = Sink()
    broker = RedisBroker(url=redis_server.url, options=BrokerOptions(prefix=f"resub{free_port()}:"))
    try:
        await started(broker, sink)
        await broker.subscribe("r")
        await async_wait_until(lambda: sink.num_resubscribed == 1, 10, "the first subscribe")
        redis_server.client().client_kill_filter(_type="pubsub", skipme=True)
        await async_wait_until(lambda: sink.num_resubscribed == 2, 15, "the resubscribe")
        broker.publish("r", b"after")
        await async_wait_until(lambda: ("r", b"after") in sink.got, 10, "delivery after it")
    finally:
        await broker.close()


async def test_noscript_reloads_the_script_and_loses_nothing(own_redis: RedisServer) -> None:
    """SCRIPT FLUSH empties the script cache mid-stream: history publishes are sent again
    after the reload, in order, with no offset skipped."""
    sink = Sink()
    broker = RedisBroker(url=own_redis.url, options=BrokerOptions(prefix="noscript:"))
    try:
        await started(broker, sink)
        await broker.subscribe("n")
        for i in range(50):
            broker.publish("n", b"a%d" % i, HISTORY)
        await async_wait_until(lambda: len(sink.got) >= 50, 10, "the first 50")
        own_redis.client().script_flush()
        for i in range(50):
            broker.publish("n", b"b%d" % i, HISTORY)
        await async_wait_until(lambda: len(sink.got) >= 100, 20, "the next 50")
        offsets = [decode_envelope(p).offset for _, p in sink.got]
        assert offsets == list(range(1, 101))
    finally:
        await broker.close()
