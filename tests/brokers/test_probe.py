"""The broker's probe judges Redis, not the process's own starvation.

A worker busy for seconds in one fan-out pass (100,000 sockets on a loaded 2-core machine) or
starved of CPU wakes with its probe's reply, and the messages published meanwhile, unread in
the kernel. Its timers run before it reads, so a probe that judged at that moment called the
process deaf and aborted its pub/sub connection, discarding those messages unread.
broadcast-all to 100,000 sockets with a 1.5 s probe timeout lost 247,715 of 3,960,000
deliveries that way, whole rounds of whole workers (docs/benchmarks.md); with the fix, 0.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence

import uvloop
from support import RedisServer, async_wait_until, free_port
from support.counting import count

from hub.brokers import BrokerOptions
from hub.brokers.redis import RedisBroker

NUM_MESSAGES = 50
BLOCKED_S = 1.5


class StarvingSink:
    """Receives the channel's messages; once armed, the next batch it is given stalls the
    loop for ``BLOCKED_S`` inside the pub/sub connection's read, as a long fan-out pass does,
    right after sending the probe held back until then: its reply, and what is published
    meanwhile, arrive while the process cannot read them."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.on_armed_batch: Callable[[], None] | None = None

    def on_messages(self, batch: Sequence[tuple[str, bytes]]) -> None:
        self.got.extend(data for _, data in batch)
        stall, self.on_armed_batch = self.on_armed_batch, None
        if stall is not None:
            stall()

    def on_resubscribed(self, channels: object) -> None:
        pass


def test_a_process_starved_with_its_probe_out_is_not_deaf_and_loses_nothing(
    redis_server: RedisServer,
) -> None:
    # Under uvloop, as the hub runs: its timers fire before the next poll for I/O.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(starved_with_the_probe_out(redis_server))


async def starved_with_the_probe_out(redis_server: RedisServer) -> None:
    prefix = f"starved{free_port()}:"
    key = f"{prefix}x"
    options = BrokerOptions(prefix=prefix, probe_interval_s=0.2, probe_timeout_s=0.6)
    broker = RedisBroker(url=redis_server.url, options=options)
    sink = StarvingSink()
    publisher = redis_server.client()
    publishing = threading.Thread(
        target=lambda: [publisher.publish(key, b"%d" % i) for i in range(NUM_MESSAGES)]
    )
    pipeline = broker._publisher
    enqueue = pipeline.enqueue
    stalled = asyncio.Event()

    def stall_with_the_probe_out(probe_key: bytes, data: bytes) -> None:
        enqueue(probe_key, data)
        pipeline._flush()  # the probe leaves now, before the stall, not at the next loop turn
        publishing.start()
        time.sleep(BLOCKED_S)
        stalled.set()

    def hold_the_probe(probe_key: bytes, data: bytes, kind: object = None) -> None:
        if data != b"probe" or stalled.is_set() or sink.on_armed_batch is not None:
            enqueue(probe_key, data)
            return
        # The next probe waits until a message read before its reply starts a long pass.
        sink.on_armed_batch = lambda: stall_with_the_probe_out(probe_key, data)
        publisher.publish(key, b"-1")

    try:
        await broker.start(sink)
        await async_wait_until(lambda: broker.is_ready, 10, "broker ready")
        await broker.subscribe("x")
        await async_wait_until(lambda: publisher.pubsub_numsub(key)[0][1] == 1, 10, "subscribed")
        pipeline.enqueue = hold_the_probe  # type: ignore[method-assign,assignment]
        await asyncio.wait_for(stalled.wait(), 10)
        publishing.join(10)
        deadline = time.monotonic() + 10
        while len(sink.got) < NUM_MESSAGES + 1 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(options.probe_timeout_s * 2)  # any verdict has been taken by now

        counts = count([int(data) for data in sink.got], range(-1, NUM_MESSAGES))
        assert counts.is_exact, str(counts)
        assert broker.stats.num_probe_failures == 0
        assert broker.stats.num_reconnects == 0
        assert broker.is_ready
    finally:
        await broker.close()


async def test_a_silent_redis_is_still_found_deaf_within_the_timeout(
    own_redis: RedisServer,
) -> None:
    """The guard above must not hide a real silence: Redis stopped (SIGSTOP) leaves every
    connection open and answers nothing; the probe calls the process deaf."""
    options = BrokerOptions(
        prefix=f"silent{free_port()}:", probe_interval_s=0.2, probe_timeout_s=0.6
    )
    broker = RedisBroker(url=own_redis.url, options=options)
    try:
        await broker.start(StarvingSink())
        await async_wait_until(lambda: broker.is_ready, 10, "broker ready")
        own_redis.pause()
        try:
            started = time.monotonic()
            await async_wait_until(lambda: not broker.is_ready, 10, "the probe to find it deaf")
            assert time.monotonic() - started < 3 * options.probe_timeout_s
            assert broker.stats.num_probe_failures >= 1
        finally:
            own_redis.resume()
        await async_wait_until(lambda: broker.is_ready, 15, "broker ready again")
    finally:
        await broker.close()
