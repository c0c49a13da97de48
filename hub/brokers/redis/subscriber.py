"""The pub/sub side of the Redis broker: one connection reads every channel of the process.

Each channel is SUBSCRIBEd once per process, whatever the number of local clients. The reader
hands everything that arrived in one read to the handler as a single batch. After a lost
connection it resubscribes every channel and, once Redis confirms them all, tells the handler
(``on_resubscribed``) so that history channels can repair what was missed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hub.brokers.base import BrokerEventHandler, BrokerStats
from hub.brokers.redis.link import RedisLink
from hub.brokers.resp import Reply, RespConnection, encode_command

__all__ = ["RedisSubscriber"]

logger = logging.getLogger(__name__)

_SUBSCRIBE_CHUNK = 500
_CONFIRM_TIMEOUT_S = 5.0


class RedisSubscriber:
    def __init__(
        self,
        link: RedisLink,
        *,
        prefix: bytes,
        stats: BrokerStats,
        probe_key: bytes,
        on_probe: Callable[[], None],
    ) -> None:
        self._link = link
        self._prefix = prefix
        self.stats = stats
        self._probe_key = probe_key
        self._on_probe = on_probe
        self.handler: BrokerEventHandler | None = None
        # Wanted channels by key, and confirmations awaited by key.
        self._keys: dict[bytes, str] = {}
        self._confirmations: dict[bytes, list[asyncio.Future[None]]] = {}
        self.conn: RespConnection | None = None
        #: Set while the connection is up and every channel is (being) subscribed.
        self.is_subscribed = asyncio.Event()

    async def subscribe(self, channel: str) -> None:
        key = self._prefix + channel.encode()
        self._keys[key] = channel
        conn = self.conn
        if conn is None or conn.transport is None:
            return  # subscribed by run() once Redis is back
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(key, []).append(waiter)
        conn.transport.write(encode_command(b"SUBSCRIBE", key))
        try:
            await asyncio.wait_for(asyncio.shield(waiter), _CONFIRM_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            logger.warning("redis did not confirm SUBSCRIBE %s in time", channel)

    async def unsubscribe(self, channel: str) -> None:
        key = self._prefix + channel.encode()
        if self._keys.pop(key, None) is None:
            return
        conn = self.conn
        if conn is not None and conn.transport is not None:
            conn.transport.write(encode_command(b"UNSUBSCRIBE", key))

    def _on_replies(self, replies: list[Reply]) -> None:
        batch: list[tuple[str, bytes]] = []
        keys = self._keys
        handler = self.handler
        for reply in replies:
            kind = reply[0]
            if kind == b"message":
                channel = keys.get(reply[1])
                if channel is not None:
                    batch.append((channel, reply[2]))
                elif reply[1] == self._probe_key:
                    self._on_probe()
            elif kind == b"subscribe":
                for waiter in self._confirmations.pop(reply[1], ()):
                    if not waiter.done():
                        waiter.set_result(None)
            elif kind == b"pong" and handler is not None:
                if batch:
                    handler.on_messages(batch)
                    batch = []
                handler.on_resubscribed()
        if batch and handler is not None:
            handler.on_messages(batch)

    async def run(self, on_connected: Callable[[], None]) -> None:
        link = self._link
        while not link.is_closing:
            conn = await link.connect("subscriber", self._on_replies)
            keys = [self._probe_key, *self._keys]
            assert conn.transport is not None
            for i in range(0, len(keys), _SUBSCRIBE_CHUNK):
                conn.transport.write(encode_command(b"SUBSCRIBE", *keys[i : i + _SUBSCRIBE_CHUNK]))
            # Its "pong" comes after every SUBSCRIBE above is in force (on_resubscribed).
            conn.transport.write(encode_command(b"PING"))
            self.conn = conn
            self.is_subscribed.set()
            on_connected()
            logger.info(
                "redis subscriber connected to %s; subscribed %d channels",
                link.endpoint.describe(),
                len(keys) - 1,
            )
            await conn.lost
            self.conn = None
            self.is_subscribed.clear()
            for waiters in self._confirmations.values():
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(ConnectionError("redis subscriber lost"))
            self._confirmations.clear()
            if link.is_closing:
                return
            self.stats.num_reconnects += 1
            self.stats.num_gaps += 1
            logger.warning(
                "redis subscriber connection lost (a Redis restart, a CLIENT KILL, or the "
                "pubsub output-buffer limit); history channels repair what was missed, other "
                "channels' messages published until the resubscribe are not delivered here"
            )
