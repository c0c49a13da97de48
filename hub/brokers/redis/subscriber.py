"""The pub/sub side of the Redis broker: one connection reads every channel of the process
(on Redis Cluster, every channel of one partition).

Each channel is SUBSCRIBEd (SSUBSCRIBEd) once per process, whatever the number of local
clients. The reader hands everything that arrived in one read to the handler as a single
batch. After a lost connection it resubscribes every channel and, once Redis confirms them
all, tells the handler (``on_resubscribed``) so that history channels can repair what was
missed meanwhile. On Redis Cluster, a ``sunsubscribe`` that this process did not ask for
means the slot moved (a resharding or a failover): the connection is dropped and made again
to the slot's new owner, which resubscribes the partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

import hiredis

from hub.brokers.base import BrokerEventHandler, BrokerStats
from hub.brokers.names import Names
from hub.brokers.redis.link import RedisLink
from hub.brokers.resp import Connection, Reply, encode_command

__all__ = ["RedisSubscriber"]

logger = logging.getLogger(__name__)

_SUBSCRIBE_CHUNK = 500
_CONFIRM_TIMEOUT_S = 5.0
#: Before connecting again after Redis said the slot is elsewhere (MOVED in reply to
#: SSUBSCRIBE: the topology was stale), so a slow-spreading change is not a busy loop.
_REDIRECT_PAUSE_S = 0.05


class RedisSubscriber:
    def __init__(
        self,
        link: RedisLink,
        *,
        names: Names,
        stats: BrokerStats,
        probe_key: bytes,
        on_probe: Callable[[], None],
    ) -> None:
        self._link = link
        self.stats = stats
        self._probe_key = probe_key
        self._on_probe = on_probe
        if names.sharded:
            self._subscribe, self._unsubscribe = b"SSUBSCRIBE", b"SUNSUBSCRIBE"
            self._message, self._confirm = b"smessage", b"ssubscribe"
        else:
            self._subscribe, self._unsubscribe = b"SUBSCRIBE", b"UNSUBSCRIBE"
            self._message, self._confirm = b"message", b"subscribe"
        self._names = names
        self.handler: BrokerEventHandler | None = None
        # Wanted channels by key, confirmations awaited by key, and the unsubscribes this
        # process sent that Redis has not confirmed yet (any other is Redis's own).
        self._keys: dict[bytes, str] = {}
        self._confirmations: dict[bytes, list[asyncio.Future[None]]] = {}
        self._unsubscribing: Counter[bytes] = Counter()
        self._redirected = False
        self.conn: Connection | None = None
        #: Set while the connection is up and every channel is (being) subscribed.
        self.is_subscribed = asyncio.Event()

    async def subscribe(self, channel: str) -> None:
        key = self._names.pubsub(channel)
        self._keys[key] = channel
        conn = self.conn
        if conn is None or not conn.is_open:
            return  # subscribed by run() once Redis is back
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(key, []).append(waiter)
        conn.send(encode_command(self._subscribe, key))
        try:
            await asyncio.wait_for(asyncio.shield(waiter), _CONFIRM_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            logger.warning("redis did not confirm SUBSCRIBE %s in time", channel)

    async def unsubscribe(self, channel: str) -> None:
        key = self._names.pubsub(channel)
        if self._keys.pop(key, None) is None:
            return
        conn = self.conn
        if conn is not None and conn.is_open:
            self._unsubscribing[key] += 1
            conn.send(encode_command(self._unsubscribe, key))

    def _on_replies(self, replies: list[Reply]) -> None:
        batch: list[tuple[str, bytes]] = []
        keys = self._keys
        handler = self.handler
        message = self._message
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                self._on_error(reply)
                continue
            kind = reply[0]
            if kind == message:
                channel = keys.get(reply[1])
                if channel is not None:
                    batch.append((channel, reply[2]))
                elif reply[1] == self._probe_key:
                    self._on_probe()
            elif kind == self._confirm:
                for waiter in self._confirmations.pop(reply[1], ()):
                    if not waiter.done():
                        waiter.set_result(None)
            elif kind == b"sunsubscribe":
                self._on_sunsubscribe(reply[1])
            elif kind == b"pong" and handler is not None:
                if batch:
                    handler.on_messages(batch)
                    batch = []
                handler.on_resubscribed(list(keys.values()))
        if batch and handler is not None:
            handler.on_messages(batch)

    def _on_sunsubscribe(self, key: bytes) -> None:
        if self._unsubscribing[key] > 0:
            self._unsubscribing[key] -= 1
            if not self._unsubscribing[key]:
                del self._unsubscribing[key]
            return
        if (key in self._keys or key == self._probe_key) and self.conn is not None:
            # Redis dropped the channel: its slot moved to another node (a resharding, or a
            # failover demoted this one). Connect again to the slot's owner.
            self._link.log(
                logging.INFO, "moved", "redis: a slot moved; resubscribing at its new owner"
            )
            self._redirected = True
            self.conn.close()

    def _on_error(self, error: hiredis.ReplyError) -> None:
        text = str(error)
        if text.startswith(("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")) and self.conn is not None:
            self._link.log(
                logging.INFO, "redirected", "redis subscriber: %s; connecting to the owner", text
            )
            self._redirected = True
            self.conn.close()
        else:
            logger.warning("redis refused a subscription: %s", text)

    async def run(self, on_connected: Callable[[], None]) -> None:
        link = self._link
        while not link.is_closing:
            if self._redirected:
                self._redirected = False
                await asyncio.sleep(_REDIRECT_PAUSE_S)
            conn = await link.connect("subscriber", self._on_replies)
            keys = [self._probe_key, *self._keys]
            for i in range(0, len(keys), _SUBSCRIBE_CHUNK):
                chunk = keys[i : i + _SUBSCRIBE_CHUNK]
                conn.send(encode_command(self._subscribe, *chunk))
            # Its "pong" comes after every SUBSCRIBE above is in force (on_resubscribed).
            conn.send(encode_command(b"PING"), 1)
            self.conn = conn
            self._unsubscribing.clear()
            self.is_subscribed.set()
            on_connected()
            link.log(
                logging.INFO,
                "connected",
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
            if self._redirected:
                continue
            link.log(
                logging.WARNING,
                "subscriber lost",
                "redis subscriber connection lost (a Redis restart, a CLIENT KILL, or the "
                "pubsub output-buffer limit); history channels repair what was missed, other "
                "channels' messages published until the resubscribe are not delivered here",
            )
