"""The publish side of the Redis broker: one connection, pipelined.

Everything published during one event-loop turn leaves in one write. While Redis is
unreachable, messages are held in a bounded buffer and published in order after the reconnect;
unanswered ones are sent again first. History channels go through the history script (EVALSHA,
reloaded on NOSCRIPT), whose message id makes such a resend a no-op when the first one went
through. Presence writes share the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

import hiredis

from hub.brokers.base import BrokerStats
from hub.brokers.redis.link import RECONNECT_MAX_S, RedisLink
from hub.brokers.resp import Reply, RespConnection, encode_command, publish_header
from hub.brokers.scripts import (
    PRESENCE_SCRIPT,
    PUBLISH_SCRIPT,
    READ_SCRIPT,
    new_message_id,
    presence_keys,
    publish_args,
    run_id,
    sha1,
)
from hub.core.namespaces import ChannelOptions

__all__ = ["RESUBSCRIBE_GRACE_S", "RedisPublisher"]

logger = logging.getLogger(__name__)

RESUBSCRIBE_GRACE_S = RECONNECT_MAX_S + 0.5
_PUBLISH_SHA = sha1(PUBLISH_SCRIPT)


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
_Kind = _HistoryPublish | _Command | None
#: Waiting to be written: (pub/sub key, envelope, None) for a PUBLISH, (key, envelope, a
#: _HistoryPublish) for the history script, (b"", encoded command, _COMMAND) for the rest.
_Unsent = tuple[bytes, bytes, _Kind]


class RedisPublisher:
    def __init__(
        self,
        link: RedisLink,
        *,
        prefix: bytes,
        stats: BrokerStats,
        max_held_messages: int,
        max_held_bytes: int,
        is_subscribed: asyncio.Event,
        untimed_key: bytes = b"",
        on_roundtrip: Callable[[float], None] | None = None,
    ) -> None:
        self._link = link
        self._prefix = prefix
        #: The run_id of the server this publisher's connection reaches (the history
        #: script's writer check: see scripts.py).
        self._run_id = b""
        self.stats = stats
        self._max_held_messages = max_held_messages
        self._max_held_bytes = max_held_bytes
        self._is_subscribed = is_subscribed
        # The probe's key: its replies are neither counted nor timed as publishes.
        self._untimed_key = untimed_key
        self._on_roundtrip = on_roundtrip
        # What is not yet written, and what is written but unanswered (with the time it was
        # sent, for the round-trip metric).
        self._unsent: deque[_Unsent] = deque()
        self._inflight: deque[tuple[bytes, bytes, _Kind, float]] = deque()
        # History publishes that met NOSCRIPT: sent again first once the script is loaded.
        self._noscript: list[_Unsent] = []
        self._held_bytes = 0
        self.conn: RespConnection | None = None
        self._flush_scheduled = False
        self._last_drop_log = 0.0

    def publish(self, channel: str, payload: bytes, history: ChannelOptions | None = None) -> bool:
        held = len(self._unsent) + len(self._inflight)
        if (
            held >= self._max_held_messages
            or self._held_bytes + len(payload) > self._max_held_bytes
        ):
            self._drop()
            return False
        entry = _HistoryPublish(history) if history is not None and history.has_history else None
        self.enqueue(self._prefix + channel.encode(), payload, entry)
        return True

    def enqueue(self, key: bytes, payload: bytes, kind: _Kind = None) -> None:
        """Queue past the buffer bound (the probe, which must not be dropped)."""
        self._unsent.append((key, payload, kind))
        self._held_bytes += len(payload)
        if self.conn is not None and not self._flush_scheduled:
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
        conn = self.conn
        if conn is None or conn.transport is None or not self._unsent:
            return
        now = time.monotonic()
        parts: list[bytes] = []
        unsent, inflight = self._unsent, self._inflight
        first = True
        while unsent:
            key, payload, kind = unsent.popleft()
            if kind is None:
                parts.append(publish_header(key, len(payload)))
                parts.append(payload)
                parts.append(b"\r\n")
            elif isinstance(kind, _HistoryPublish):
                parts.append(self._history_publish(key, payload, kind))
            else:
                parts.append(payload)
            # Only a batch's first command is timed: one round-trip sample per write.
            inflight.append((key, payload, kind, now if first else 0.0))
            first = False
        conn.transport.write(b"".join(parts))

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
            writer=self._run_id,
        )
        return encode_command(b"EVALSHA", _PUBLISH_SHA, *args)

    def _on_replies(self, replies: list[Reply]) -> None:
        inflight = self._inflight
        stats = self.stats
        for reply in replies:
            if not inflight:
                logger.error("redis publisher: reply %r with no publish awaiting it", reply)
                continue
            key, payload, kind, sent_at = inflight.popleft()
            is_error = isinstance(reply, hiredis.ReplyError)
            if is_error and str(reply).startswith(("NOSCRIPT", "READONLY")):
                # Redis lost its script cache (SCRIPT FLUSH, or a failover to a server that
                # never saw it), or this server is a replica now (a failover demoted it):
                # reconnect (with Sentinel, to the new master), and send these again, first.
                self._noscript.append((key, payload, kind))
                if self.conn is not None:
                    self.conn.close()
                continue
            self._held_bytes -= len(payload)
            if kind is _COMMAND:
                if is_error:
                    logger.warning("redis refused a presence write: %s", reply)
            elif is_error:
                stats.num_publish_errors += 1
                logger.warning("redis refused a PUBLISH: %s", reply)
            elif key is not self._untimed_key:
                stats.num_published += 1
                if sent_at and self._on_roundtrip is not None:
                    self._on_roundtrip(time.monotonic() - sent_at)

    async def run(self) -> None:
        link = self._link
        while not link.is_closing:
            conn = await link.connect("publisher", self._on_replies)
            try:
                for script in (PUBLISH_SCRIPT, READ_SCRIPT, PRESENCE_SCRIPT):
                    await conn.command(b"SCRIPT", b"LOAD", script)
                self._run_id = run_id(await conn.command(b"INFO", b"server"))
            except (TimeoutError, ConnectionError, hiredis.ReplyError) as exc:
                logger.warning("redis publisher: cannot load the history scripts: %s", exc)
                conn.close()
                await asyncio.sleep(RECONNECT_MAX_S)
                continue
            logger.info("redis publisher connected to %s", link.endpoint.describe())
            if self._unsent:
                await self._await_resubscribed()
                logger.info("publishing %d messages held during the outage", len(self._unsent))
            self.conn = conn
            self._flush()
            await conn.lost
            self.conn = None
            if link.is_closing:
                return
            self.stats.num_reconnects += 1
            # Unanswered publishes go out again, first and in order.
            while self._inflight:
                key, payload, kind, _ = self._inflight.pop()
                if isinstance(kind, _HistoryPublish):
                    kind.is_resend = True  # it may have gone through: the script checks
                self._unsent.appendleft((key, payload, kind))
            while self._noscript:
                self._unsent.appendleft(self._noscript.pop())
            logger.warning(
                "redis publisher connection lost; holding up to %d messages until it is back",
                self._max_held_messages,
            )

    async def _await_resubscribed(self) -> None:
        """Hold the outage's messages until subscribers are likely back.

        Published before the other processes resubscribe, they would reach no one. This
        process's own subscriber is awaited; the others reconnect within one backoff ceiling
        of Redis coming back, so that long is allowed for them too.
        """
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._is_subscribed.wait(), RESUBSCRIBE_GRACE_S * 4)
        await asyncio.sleep(RESUBSCRIBE_GRACE_S)

    # Presence: skipped while Redis is unreachable (the node writes its members again once
    # it is back).

    def _command(self, *args: bytes) -> None:
        if self.conn is not None:
            self.enqueue(b"", encode_command(*args), _COMMAND)

    def presence_add(
        self, name: bytes, channel: str, client: str, user: str | None, ttl_s: float
    ) -> None:
        clients, processes = presence_keys(self._prefix, channel)
        ttl_ms = b"%d" % int(ttl_s * 2000)
        self._command(b"HSET", clients, client.encode(), name + b"\n" + (user or "").encode())
        self._command(b"ZADD", processes, b"%.3f" % (time.time() + ttl_s), name)
        self._command(b"PEXPIRE", clients, ttl_ms)
        self._command(b"PEXPIRE", processes, ttl_ms)

    def presence_remove(self, channel: str, client: str) -> None:
        clients, _ = presence_keys(self._prefix, channel)
        self._command(b"HDEL", clients, client.encode())

    def presence_heartbeat(self, name: bytes, channels: Sequence[str], ttl_s: float) -> None:
        expires = b"%.3f" % (time.time() + ttl_s)
        ttl_ms = b"%d" % int(ttl_s * 2000)
        for channel in channels:
            clients, processes = presence_keys(self._prefix, channel)
            self._command(b"ZADD", processes, expires, name)
            self._command(b"PEXPIRE", clients, ttl_ms)
            self._command(b"PEXPIRE", processes, ttl_ms)
