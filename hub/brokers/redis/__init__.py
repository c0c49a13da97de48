"""The Redis broker: per process, one pipelined publish connection (``pipeline.py``), one
pub/sub connection (``subscriber.py``) and one connection for history and presence reads
(``reader.py``). Its presence (``presence.py``) writes through a bounded queue and a
connection of its own (opened on first use), so that presence never takes from the budget
that holds clients' publishes, and reads through the reader.

A probe travels through this process's own publish → Redis → subscribe path; when it does not
come back in time the process calls itself deaf, turns unready, and reconnects (the failure
that leaves Socket.IO adapters up, green and deaf).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import replace

from hub.brokers.base import BrokerEventHandler, BrokerStats
from hub.brokers.names import FlatNames, Names
from hub.brokers.options import BrokerOptions
from hub.brokers.redis.entries import HeldBudget
from hub.brokers.redis.link import RECONNECT_MAX_S, RedisLink
from hub.brokers.redis.pipeline import RESUBSCRIBE_GRACE_S, RedisPipeline
from hub.brokers.redis.presence import RedisPresence
from hub.brokers.redis.reader import RedisReader
from hub.brokers.redis.sentinel import SentinelLocator, SentinelTarget, is_sentinel_url
from hub.brokers.redis.subscriber import RedisSubscriber
from hub.brokers.resp import Endpoint

__all__ = ["RECONNECT_MAX_S", "RESUBSCRIBE_GRACE_S", "RedisBroker", "RedisPresence"]

logger = logging.getLogger(__name__)

#: Before a deaf verdict, the loop gets this long to read what already waits in the kernel.
_READ_TURN_S = 0.001


class RedisBroker:
    """A Broker. ``publish``, ``subscribe``, ``unsubscribe`` and ``read_history`` are its
    parts' own methods, bound here: a publish goes from the node straight to the pipeline.

    ``link``, ``names``, ``stats`` and ``budget`` are given by the cluster broker, whose
    partitions are RedisBrokers; elsewhere ``url`` says where Redis is.
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        options: BrokerOptions | None = None,
        link: RedisLink | None = None,
        names: Names | None = None,
        stats: BrokerStats | None = None,
        budget: HeldBudget | None = None,
    ) -> None:
        options = options or BrokerOptions()
        self.stats = stats or BrokerStats()
        name = options.name or f"hub-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._name = name.encode()
        self._locator: SentinelLocator | None = None
        if link is not None:
            self._link = link  # one partition of a Redis Cluster
        elif url is None:
            raise ValueError("RedisBroker needs a url or a link")
        elif is_sentinel_url(url):
            target = SentinelTarget.from_url(url)
            self._locator = SentinelLocator(target)
            placeholder = replace(target.master, host=target.describe())
            self._link = RedisLink(placeholder, name, locate=self._locator.locate)
        else:
            self._link = RedisLink(Endpoint.from_url(url), name)
        layout: Names = names or FlatNames(options.prefix.encode())
        self._names = layout
        self._probe_key = layout.probe(self._name)
        self._probe_interval_s = options.probe_interval_s
        self._probe_timeout_s = options.probe_timeout_s
        self._probe_sent_at: float | None = None
        # Since when a probe that is out counts against Redis: its send, or the end of the
        # last stretch in which this process itself could not read (see _run_probe).
        self._probe_heard_since = 0.0
        self._on_probe_latency = options.on_probe_latency
        self._is_deaf = False
        self._subscriber = RedisSubscriber(
            self._link,
            names=layout,
            stats=self.stats,
            probe_key=self._probe_key,
            on_probe=self._on_probe,
        )
        self._publisher = RedisPipeline(
            self._link,
            names=layout,
            stats=self.stats,
            budget=budget
            or HeldBudget(options.publish_buffer_messages, options.publish_buffer_bytes),
            is_subscribed=self._subscriber.is_subscribed,
            untimed_key=self._probe_key,
            on_roundtrip=options.on_roundtrip,
            guard_key=self._probe_key if layout.sharded else None,
        )
        self._reader = RedisReader(self._link, names=layout)
        self._presence = RedisPresence(
            self._link,
            names=layout,
            name=self._name,
            stats=self.stats,
            run_script=self._reader.run_script,
            max_pending=options.presence_buffer_entries,
        )
        self._tasks: list[asyncio.Task[None]] = []
        # The Broker interface, where it only forwards: the parts' methods themselves.
        self.publish = self._publisher.publish
        self.subscribe = self._subscriber.subscribe
        self.unsubscribe = self._subscriber.unsubscribe
        self.read_history = self._reader.read_history
        self.delete_history = self._reader.delete_history

    def presence(self) -> RedisPresence:
        """The presence manager beside this broker: it writes on a connection of its own and
        reads through the reader."""
        return self._presence

    # Lifecycle

    @property
    def endpoint(self) -> Endpoint:
        """Where this broker's connections go (last located, with Sentinel or Cluster)."""
        return self._link.endpoint

    @property
    def is_ready(self) -> bool:
        # The reader too: after an outage each part reconnects on its own backoff, and a
        # process that said ready before its reader was back refused recovering subscribes.
        return (
            self._publisher.conn is not None
            and self._subscriber.conn is not None
            and self._reader.conn is not None
            and not self._is_deaf
        )

    async def start(self, handler: BrokerEventHandler) -> None:
        self._subscriber.handler = handler
        supervise = self._link.supervise
        self._tasks = [
            asyncio.create_task(supervise("publisher", self._publisher.run)),
            asyncio.create_task(
                supervise("subscriber", lambda: self._subscriber.run(self._on_subscribed))
            ),
            asyncio.create_task(supervise("probe", self._run_probe)),
            asyncio.create_task(supervise("reader", self._reader.run)),
            asyncio.create_task(supervise("presence", self._presence.run)),
        ]
        if self._locator is not None:
            watch = self._locator.watch
            self._tasks.append(
                asyncio.create_task(supervise("sentinel", lambda: watch(self._reconnect)))
            )

    async def close(self) -> None:
        self._link.is_closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._reconnect()
        for part in self._parts():
            part.conn = None
        if self._locator is not None:
            await self._locator.close()

    def _reconnect(self) -> None:
        """Close every connection: while the broker runs, each reconnects (with Sentinel,
        asking where the master is now) and the subscriber resubscribes every channel."""
        for part in self._parts():
            if part.conn is not None:
                part.conn.close()

    def _parts(self) -> tuple[RedisPipeline | RedisSubscriber | RedisReader | RedisPresence, ...]:
        return (self._publisher, self._subscriber, self._reader, self._presence)

    # The probe

    def _on_subscribed(self) -> None:
        self._probe_sent_at = None
        self._is_deaf = False

    def _on_probe(self) -> None:
        """The probe is back: this process's publish → Redis → subscribe path works, and
        took this long (the end-to-end latency every message of this process sees)."""
        sent_at = self._probe_sent_at
        self._probe_sent_at = None
        if sent_at is not None and self._on_probe_latency is not None:
            self._on_probe_latency(time.monotonic() - sent_at)

    async def _run_probe(self) -> None:
        """Every interval, send a probe unless one is out; call the process deaf when one has
        been out for the probe timeout **while this process was listening**.

        A process that did not run (a fan-out pass of seconds to 100,000 sockets on a loaded
        machine, CPU starvation, SIGSTOP) wakes with the probe's reply, and the messages
        published meanwhile, still unread in the kernel, and its timers run before it reads
        (uvloop). A verdict then would abort the pub/sub connection and discard those
        messages unread. So a tick that wakes late restarts the probe's clock, and a verdict
        is taken only after one more turn of the loop has read what waits."""
        interval_s, timeout_s = self._probe_interval_s, self._probe_timeout_s
        starved_after_s = timeout_s / 3
        due = time.monotonic() + interval_s
        while not self._link.is_closing:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            now = time.monotonic()
            late_s, due = now - due, now + interval_s
            publisher, subscriber = self._publisher.conn, self._subscriber.conn
            if publisher is None or subscriber is None:
                continue
            sent_at = self._probe_sent_at
            if sent_at is not None and late_s > starved_after_s:
                self._probe_heard_since = now  # no verdict on what this process did not read
            elif sent_at is not None and now - max(sent_at, self._probe_heard_since) > timeout_s:
                await asyncio.sleep(_READ_TURN_S)
                if self._probe_sent_at != sent_at or self._link.is_closing:
                    continue  # it was back, unread; or the broker is closing
                if time.monotonic() - now > starved_after_s:
                    self._probe_heard_since = time.monotonic()
                    continue
                self.stats.num_probe_failures += 1
                self._is_deaf = True
                logger.warning(
                    "no probe came back through Redis pub/sub for %.1fs: this process is deaf; "
                    "reconnecting and resubscribing",
                    now - sent_at,
                )
                # Every connection of this process goes to the same Redis: when its pub/sub
                # path is silent, so are the others. Each is abandoned with an RST (resp.py).
                for part in self._parts():
                    if part.conn is not None:
                        part.conn.abort()
                continue
            if sent_at is None:
                self._probe_sent_at = self._probe_heard_since = now
            # The probe bypasses the buffer bound: it must not be dropped, it measures.
            self._publisher.enqueue(self._probe_key, b"probe")
