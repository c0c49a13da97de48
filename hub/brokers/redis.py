"""The Redis broker: one pipelined publish connection and one pub/sub connection per process.

Each channel is SUBSCRIBEd once per process, whatever the number of local clients. The
subscriber reads with hiredis and hands everything that arrived in one read to the node as a
single batch. A probe travels through this process's own publish → Redis → subscribe path;
when it does not come back in time the process calls itself deaf, turns unready, and
reconnects both connections (the failure that leaves Socket.IO adapters up, green and deaf).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import hiredis

from hub.brokers.base import BrokerEventHandler, BrokerStats, BrokerUnavailable
from hub.brokers.resp import Endpoint, Reply, RespConnection, encode_command, open_connection
from hub.brokers.scripts import (
    PRESENCE_SCRIPT,
    PUBLISH_SCRIPT,
    READ_SCRIPT,
    history_keys,
    new_epoch,
    new_message_id,
    presence_keys,
    publish_args,
    sha1,
)
from hub.core.backoff import backoff
from hub.core.envelope import decode_envelope
from hub.core.namespaces import ChannelOptions
from hub.core.sequence import HistoryPage

__all__ = ["RedisBroker"]

logger = logging.getLogger(__name__)

_SUBSCRIBE_CHUNK = 500
_CONFIRM_TIMEOUT_S = 5.0
#: The reconnect backoff's ceiling: every process retries at least this often.
RECONNECT_MAX_S = 2.0
RESUBSCRIBE_GRACE_S = RECONNECT_MAX_S + 0.5
_PUBLISH_SHA = sha1(PUBLISH_SCRIPT)
_READ_SHA = sha1(READ_SCRIPT)
_PRESENCE_SHA = sha1(PRESENCE_SCRIPT)


class _HistoryPublish:
    """A history channel's publish: its options, and the id that makes a resend idempotent."""

    __slots__ = ("id", "is_resend", "options")

    def __init__(self, options: ChannelOptions) -> None:
        self.options = options
        self.id = new_message_id()
        self.is_resend = False


class _Command:
    """Marks a queued entry whose payload is a whole encoded command (presence writes)."""

    __slots__ = ()


_COMMAND = _Command()

#: A publish waiting to be written: (pub/sub key, envelope, history publish or None), or
#: (b"", encoded command, _COMMAND).
_Unsent = tuple[bytes, bytes, _HistoryPublish | _Command | None]


class RedisBroker:
    def __init__(
        self,
        *,
        url: str,
        prefix: str = "hub:",
        publish_buffer_messages: int = 10_000,
        publish_buffer_bytes: int = 16 * 1024 * 1024,
        probe_interval_s: float = 1.0,
        probe_timeout_s: float = 3.0,
        name: str | None = None,
        on_roundtrip: Callable[[float], None] | None = None,
    ) -> None:
        self.stats = BrokerStats()
        self._endpoint = Endpoint.from_url(url)
        self._prefix = prefix.encode()
        self._max_held_messages = publish_buffer_messages
        self._max_held_bytes = publish_buffer_bytes
        self._probe_interval_s = probe_interval_s
        self._probe_timeout_s = probe_timeout_s
        self._name = name or f"hub-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._on_roundtrip = on_roundtrip
        self._handler: BrokerEventHandler | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        # Publishing: what is not yet written, and what is written but unanswered (with the
        # time it was sent, for the round-trip metric).
        self._unsent: deque[_Unsent] = deque()
        self._inflight: deque[tuple[bytes, bytes, _HistoryPublish | _Command | None, float]] = (
            deque()
        )
        # History publishes that met NOSCRIPT: sent again first once the script is loaded.
        self._noscript: list[_Unsent] = []
        # Requests that await their reply (history reads), on a connection of their own.
        self._cmd: RespConnection | None = None
        self._held_bytes = 0
        self._pub: RespConnection | None = None
        self._flush_scheduled = False
        self._last_drop_log = 0.0
        # Subscribing: wanted channels by key, and confirmations awaited by key.
        self._keys: dict[bytes, str] = {}
        self._sub: RespConnection | None = None
        self._subscribed = asyncio.Event()
        self._confirmations: dict[bytes, list[asyncio.Future[None]]] = {}
        # The probe: a channel outside the client namespace ('$' is not a valid name char).
        self._probe_key = self._prefix + b"$probe:" + self._name.encode()
        self._probe_sent_at: float | None = None
        self._is_deaf = False

    # Lifecycle

    @property
    def is_ready(self) -> bool:
        return self._pub is not None and self._sub is not None and not self._is_deaf

    async def start(self, handler: BrokerEventHandler) -> None:
        self._handler = handler
        self._tasks = [
            asyncio.create_task(self._supervise("publisher", self._run_publisher)),
            asyncio.create_task(self._supervise("subscriber", self._run_subscriber)),
            asyncio.create_task(self._supervise("probe", self._run_probe)),
            asyncio.create_task(self._supervise("reader", self._run_reader)),
        ]

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in (self._pub, self._sub, self._cmd):
            if conn is not None:
                conn.close()
        self._pub = self._sub = self._cmd = None

    async def _supervise(self, what: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop for the broker's lifetime; a crash is logged and restarted."""
        while not self._closing:
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("redis %s task crashed; restarting it", what)
                await asyncio.sleep(0.5)

    async def _connect(
        self, role: str, on_replies: Callable[[list[Reply]], None]
    ) -> RespConnection:
        """Connect with backoff until it works (or the broker closes)."""
        delays = backoff(max_s=RECONNECT_MAX_S)
        while True:
            try:
                return await open_connection(
                    self._endpoint, on_replies, name=f"{self._name}-{role}"
                )
            except (TimeoutError, OSError, hiredis.ReplyError) as exc:
                delay = next(delays)
                logger.warning(
                    "redis %s: cannot connect to %s (%s); retrying in %.2fs",
                    role,
                    self._endpoint.describe(),
                    exc or type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)

    # Publishing

    def publish(self, channel: str, payload: bytes, history: ChannelOptions | None = None) -> bool:
        held = len(self._unsent) + len(self._inflight)
        if (
            held >= self._max_held_messages
            or self._held_bytes + len(payload) > self._max_held_bytes
        ):
            self._drop()
            return False
        entry = _HistoryPublish(history) if history is not None and history.has_history else None
        self._enqueue(self._prefix + channel.encode(), payload, entry)
        return True

    def _enqueue(
        self, key: bytes, payload: bytes, history: _HistoryPublish | _Command | None = None
    ) -> None:
        self._unsent.append((key, payload, history))
        self._held_bytes += len(payload)
        if self._pub is not None and not self._flush_scheduled:
            # Everything published during this loop turn leaves in one write.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _drop(self) -> None:
        self.stats.num_dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log > 5.0:
            self._last_drop_log = now
            logger.warning(
                "publish buffer full (%d messages, %d bytes held while Redis is unreachable "
                "or slow); dropping messages (%d dropped so far)",
                len(self._unsent) + len(self._inflight),
                self._held_bytes,
                self.stats.num_dropped,
            )

    def _flush(self) -> None:
        self._flush_scheduled = False
        pub = self._pub
        if pub is None or pub.transport is None or not self._unsent:
            return
        now = time.monotonic()
        parts: list[bytes] = []
        unsent, inflight = self._unsent, self._inflight
        first = True
        while unsent:
            key, payload, history = unsent.popleft()
            if history is None:
                parts.append(
                    b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n$%d\r\n" % (len(key), key, len(payload))
                )
                parts.append(payload)
                parts.append(b"\r\n")
            elif history is _COMMAND:
                parts.append(payload)
            else:
                assert isinstance(history, _HistoryPublish)
                parts.append(self._history_publish(key, payload, history))
            # Only a batch's first command is timed: one round-trip sample per write.
            inflight.append((key, payload, history, now if first else 0.0))
            first = False
        pub.transport.write(b"".join(parts))

    def _history_publish(self, key: bytes, payload: bytes, entry: _HistoryPublish) -> bytes:
        """EVALSHA of the publish script: offset, append, expiries and PUBLISH in one step."""
        channel = key[len(self._prefix) :].decode()
        args = publish_args(
            self._prefix,
            channel,
            payload,
            entry.options,
            message_id=entry.id,
            is_resend=entry.is_resend,
        )
        return encode_command(b"EVALSHA", _PUBLISH_SHA, *args)

    def _on_publish_replies(self, replies: list[Reply]) -> None:
        inflight = self._inflight
        stats = self.stats
        for reply in replies:
            if not inflight:
                logger.error("redis publisher: reply %r with no publish awaiting it", reply)
                continue
            key, payload, history, sent_at = inflight.popleft()
            if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
                # Redis lost its script cache (SCRIPT FLUSH, or a failover to a server that
                # never saw it): reconnect, load the script, and send these again, first.
                self._noscript.append((key, payload, history))
                if self._pub is not None:
                    self._pub.close()
                continue
            self._held_bytes -= len(payload)
            if history is _COMMAND:
                if isinstance(reply, hiredis.ReplyError):
                    logger.warning("redis refused a presence write: %s", reply)
            elif isinstance(reply, hiredis.ReplyError):
                stats.num_publish_errors += 1
                logger.warning("redis refused a PUBLISH: %s", reply)
            elif key is not self._probe_key:
                stats.num_published += 1
                if sent_at and self._on_roundtrip is not None:
                    self._on_roundtrip(time.monotonic() - sent_at)

    async def _run_publisher(self) -> None:
        while not self._closing:
            conn = await self._connect("publisher", self._on_publish_replies)
            try:
                await _load_scripts(conn)
            except (TimeoutError, ConnectionError, hiredis.ReplyError) as exc:
                logger.warning("redis publisher: cannot load the history scripts: %s", exc)
                conn.close()
                await asyncio.sleep(RECONNECT_MAX_S)
                continue
            logger.info("redis publisher connected to %s", self._endpoint.describe())
            if self._unsent:
                await self._await_resubscribed(conn)
                logger.info("publishing %d messages held during the outage", len(self._unsent))
            self._pub = conn
            self._flush()
            await conn.lost
            self._pub = None
            if self._closing:
                return
            self.stats.num_reconnects += 1
            # Unanswered publishes go out again, first and in order: at-least-once for them.
            while self._inflight:
                key, payload, history, _ = self._inflight.pop()
                if isinstance(history, _HistoryPublish):
                    history.is_resend = True  # it may have gone through: the script checks
                self._unsent.appendleft((key, payload, history))
            while self._noscript:
                self._unsent.appendleft(self._noscript.pop())
            logger.warning(
                "redis publisher connection lost; holding up to %d messages until it is back",
                self._max_held_messages,
            )

    async def _await_resubscribed(self, conn: RespConnection) -> None:
        """Hold the outage's messages until subscribers are likely back.

        Published before the other processes resubscribe, they would reach no one. This
        process's own subscriber is awaited; the others reconnect within one backoff ceiling
        of Redis coming back, so that long is allowed for them too.
        """
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), RESUBSCRIBE_GRACE_S * 4)
        await asyncio.sleep(RESUBSCRIBE_GRACE_S)

    # History reads

    async def _run_reader(self) -> None:
        while not self._closing:
            conn = await self._connect("reader", _unexpected_reply)
            self._cmd = conn
            await conn.lost
            self._cmd = None

    async def read_history(
        self, channel: str, *, since: int | None, limit: int, options: ChannelOptions
    ) -> HistoryPage:
        conn = self._cmd
        if conn is None or conn.transport is None:
            raise BrokerUnavailable("Redis is unreachable: history cannot be read now")
        stream, meta = history_keys(self._prefix, channel)
        args = (
            stream,
            meta,
            new_epoch(),
            b"%d" % max(1, int(options.history_meta_ttl_s)),
            b"" if since is None else b"%d-0" % (since + 1),
            b"%d" % limit,
        )
        try:
            try:
                reply = await conn.command(b"EVALSHA", _READ_SHA, b"2", *args)
            except hiredis.ReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                reply = await conn.command(b"EVAL", READ_SCRIPT, b"2", *args)
        except (TimeoutError, ConnectionError, hiredis.ReplyError) as exc:
            raise BrokerUnavailable(f"reading the history of {channel} failed: {exc}") from exc
        return _history_page(reply, newest_first=since is None)

    # Presence: written through the publish pipeline; skipped while Redis is unreachable
    # (the node writes its members again once it is back).

    def _command(self, *args: bytes) -> None:
        if self._pub is not None:
            self._enqueue(b"", encode_command(*args), _COMMAND)

    def presence_add(self, channel: str, client: str, user: str | None, ttl_s: float) -> None:
        clients, processes = presence_keys(self._prefix, channel)
        name = self._name.encode()
        ttl_ms = b"%d" % int(ttl_s * 2000)
        self._command(b"HSET", clients, client.encode(), name + b"\n" + (user or "").encode())
        self._command(b"ZADD", processes, b"%.3f" % (time.time() + ttl_s), name)
        self._command(b"PEXPIRE", clients, ttl_ms)
        self._command(b"PEXPIRE", processes, ttl_ms)

    def presence_remove(self, channel: str, client: str) -> None:
        clients, _ = presence_keys(self._prefix, channel)
        self._command(b"HDEL", clients, client.encode())

    def presence_heartbeat(self, channels: Sequence[str], ttl_s: float) -> None:
        name = self._name.encode()
        expires = b"%.3f" % (time.time() + ttl_s)
        ttl_ms = b"%d" % int(ttl_s * 2000)
        for channel in channels:
            clients, processes = presence_keys(self._prefix, channel)
            self._command(b"ZADD", processes, expires, name)
            self._command(b"PEXPIRE", clients, ttl_ms)
            self._command(b"PEXPIRE", processes, ttl_ms)

    async def read_presence(self, channel: str) -> list[tuple[str, str | None]]:
        conn = self._cmd
        if conn is None or conn.transport is None:
            raise BrokerUnavailable("Redis is unreachable: presence cannot be read now")
        clients, processes = presence_keys(self._prefix, channel)
        args = (b"2", clients, processes, b"%.3f" % time.time())
        try:
            try:
                reply = await conn.command(b"EVALSHA", _PRESENCE_SHA, *args)
            except hiredis.ReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                reply = await conn.command(b"EVAL", PRESENCE_SCRIPT, *args)
        except (TimeoutError, ConnectionError, hiredis.ReplyError) as exc:
            raise BrokerUnavailable(f"reading the presence of {channel} failed: {exc}") from exc
        members = []
        for i in range(0, len(reply), 2):
            user = reply[i + 1].partition(b"\n")[2].decode()
            members.append((reply[i].decode(), user or None))
        return members

    # Subscribing

    async def subscribe(self, channel: str) -> None:
        key = self._prefix + channel.encode()
        self._keys[key] = channel
        sub = self._sub
        if sub is None or sub.transport is None:
            return  # subscribed by _run_subscriber once Redis is back
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(key, []).append(waiter)
        sub.transport.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%b\r\n" % (len(key), key))
        try:
            await asyncio.wait_for(asyncio.shield(waiter), _CONFIRM_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            logger.warning("redis did not confirm SUBSCRIBE %s in time", channel)

    async def unsubscribe(self, channel: str) -> None:
        key = self._prefix + channel.encode()
        if self._keys.pop(key, None) is None:
            return
        sub = self._sub
        if sub is not None and sub.transport is not None:
            sub.transport.write(b"*2\r\n$11\r\nUNSUBSCRIBE\r\n$%d\r\n%b\r\n" % (len(key), key))

    def _on_sub_replies(self, replies: list[Reply]) -> None:
        batch: list[tuple[str, bytes]] = []
        keys = self._keys
        for reply in replies:
            kind = reply[0]
            if kind == b"message":
                channel = keys.get(reply[1])
                if channel is not None:
                    batch.append((channel, reply[2]))
                elif reply[1] == self._probe_key:
                    self._probe_sent_at = None
            elif kind == b"subscribe":
                for waiter in self._confirmations.pop(reply[1], ()):
                    if not waiter.done():
                        waiter.set_result(None)
            elif kind == b"pong":
                if batch and self._handler is not None:
                    self._handler.on_messages(batch)
                    batch = []
                if self._handler is not None:
                    self._handler.on_resubscribed()
        if batch and self._handler is not None:
            self._handler.on_messages(batch)

    async def _run_subscriber(self) -> None:
        while not self._closing:
            conn = await self._connect("subscriber", self._on_sub_replies)
            keys = [self._probe_key, *self._keys]
            assert conn.transport is not None
            for i in range(0, len(keys), _SUBSCRIBE_CHUNK):
                conn.transport.write(encode_command(b"SUBSCRIBE", *keys[i : i + _SUBSCRIBE_CHUNK]))
            # Its "pong" comes after every SUBSCRIBE above is in force (on_resubscribed).
            conn.transport.write(encode_command(b"PING"))
            self._sub = conn
            self._subscribed.set()
            self._probe_sent_at = None
            self._is_deaf = False
            logger.info(
                "redis subscriber connected to %s; subscribed %d channels",
                self._endpoint.describe(),
                len(keys) - 1,
            )
            await conn.lost
            self._sub = None
            self._subscribed.clear()
            for waiters in self._confirmations.values():
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(ConnectionError("redis subscriber lost"))
            self._confirmations.clear()
            if self._closing:
                return
            self.stats.num_reconnects += 1
            self.stats.num_gaps += 1
            logger.warning(
                "redis subscriber connection lost (a Redis restart, a CLIENT KILL, or the "
                "pubsub output-buffer limit); messages published until the resubscribe are "
                "not delivered to this process"
            )

    # The probe

    async def _run_probe(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._probe_interval_s)
            if self._pub is None or self._sub is None:
                continue
            now = time.monotonic()
            sent_at = self._probe_sent_at
            if sent_at is not None and now - sent_at > self._probe_timeout_s:
                self.stats.num_probe_failures += 1
                self._is_deaf = True
                logger.warning(
                    "no probe came back through Redis pub/sub for %.1fs: this process is deaf; "
                    "reconnecting and resubscribing",
                    now - sent_at,
                )
                for conn in (self._sub, self._pub):
                    if conn is not None:
                        conn.close()
                continue
            if sent_at is None:
                self._probe_sent_at = now
            # The probe bypasses the buffer bound: it must not be dropped, it measures.
            self._enqueue(self._probe_key, b"probe")


async def _load_scripts(conn: RespConnection) -> None:
    """Put the history scripts in Redis's script cache, so that EVALSHA finds them."""
    for script in (PUBLISH_SCRIPT, READ_SCRIPT, PRESENCE_SCRIPT):
        await conn.command(b"SCRIPT", b"LOAD", script)


def _unexpected_reply(replies: list[Reply]) -> None:
    logger.error("redis reader: %d replies that no request awaited", len(replies))


def _history_page(reply: Reply, *, newest_first: bool) -> HistoryPage:
    """The read script's reply: [epoch, top, [[b"<offset>-0", [b"d", envelope]], ...]]."""
    epoch, top, entries = reply
    epoch_text = epoch.decode()
    messages = []
    for entry_id, fields in reversed(entries) if newest_first else entries:
        m = decode_envelope(fields[1])
        m.offset = int(entry_id.partition(b"-")[0])
        m.epoch = epoch_text
        messages.append(m)
    return HistoryPage(epoch_text, int(top), messages)
