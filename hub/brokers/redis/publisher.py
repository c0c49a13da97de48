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
from dataclasses import dataclass

import hiredis

from hub.brokers.base import BrokerStats
from hub.brokers.names import Names
from hub.brokers.redis.link import RECONNECT_MAX_S, RedisLink
from hub.brokers.resp import Connection, Reply, encode_command, publish_header
from hub.brokers.scripts import (
    PRESENCE_SCRIPT,
    PUBLISH_SCRIPT,
    READ_SCRIPT,
    new_message_id,
    publish_args,
    run_id,
    sha1,
)
from hub.core.namespaces import ChannelOptions

__all__ = ["RESUBSCRIBE_GRACE_S", "HeldBudget", "RedisPublisher"]

logger = logging.getLogger(__name__)

RESUBSCRIBE_GRACE_S = RECONNECT_MAX_S + 0.5
#: After a redirect, the other processes' subscribers move at the same moment (Redis told
#: them with ``sunsubscribe``), with no backoff: this long covers their reconnect.
REDIRECT_GRACE_S = 0.5
#: Between two tries while a slot migrates (ASK, TRYAGAIN) or the cluster is down.
_REDIRECT_PAUSE_S = 0.05
#: Replies that mean "not here, not now": the publish is sent again, first, after a
#: reconnect. NOSCRIPT: Redis lost its script cache. READONLY, MOVED: this server no longer
#: takes writes for the key (a failover, a resharding). ASK, TRYAGAIN: the slot is migrating;
#: following ASK would SPUBLISH where no subscriber listens yet (sharded pub/sub stays on
#: the source until the slot is handed over), so the publish waits for the MOVED instead.
_SEND_AGAIN = ("NOSCRIPT", "READONLY", "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")
_REDIRECTS = _SEND_AGAIN[2:]
#: After one of these, every later command of the connection ran on a server that is a
#: replica now, or no longer owns the key: whatever it answered, it is sent again.
_WRONG_SERVER = _SEND_AGAIN[1:]
_PUBLISH_SHA = sha1(PUBLISH_SCRIPT)


@dataclass
class HeldBudget:
    """The bounds of what a process holds unanswered (while Redis is away, or slow), and
    what it holds now. The partitions of a cluster broker share one: the bound is the
    process's, and a hot partition may use all of it."""

    max_messages: int
    max_bytes: int
    messages: int = 0
    bytes: int = 0

    def fits(self, size: int) -> bool:
        return self.messages < self.max_messages and self.bytes + size <= self.max_bytes


class _HistoryPublish:
    """A history channel's publish: its options, and the id that makes a resend idempotent."""

    __slots__ = ("channel", "id", "is_resend", "options")

    def __init__(self, channel: str, options: ChannelOptions) -> None:
        self.channel = channel
        self.options = options
        self.id = new_message_id()
        self.is_resend = False


class _Command:
    """Marks a queued entry whose payload is a whole encoded command (presence writes)."""

    __slots__ = ()


class _Marker:
    """The commands of the transaction around a write on Redis Cluster (see ``_flush``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_COMMAND = _Command()
_MULTI, _GUARD, _EXEC = _Marker("MULTI"), _Marker("guard"), _Marker("EXEC")
_MULTI_COMMAND, _EXEC_COMMAND = encode_command(b"MULTI"), encode_command(b"EXEC")
_Kind = _HistoryPublish | _Command | _Marker | None
#: Waiting to be written: (pub/sub key, envelope, None) for a PUBLISH, (key, envelope, a
#: _HistoryPublish) for the history script, (b"", encoded command, _COMMAND) for the rest.
_Unsent = tuple[bytes, bytes, _Kind]


class RedisPublisher:
    def __init__(
        self,
        link: RedisLink,
        *,
        names: Names,
        stats: BrokerStats,
        budget: HeldBudget,
        is_subscribed: asyncio.Event,
        untimed_key: bytes = b"",
        on_roundtrip: Callable[[float], None] | None = None,
        guard_key: bytes | None = None,
    ) -> None:
        self._link = link
        self._names = names
        self._publish_command = b"SPUBLISH" if names.sharded else b"PUBLISH"
        #: The run_id of the server this publisher's connection reaches (the history
        #: script's writer check: see scripts.py).
        self._run_id = b""
        self.stats = stats
        self.budget = budget
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
        self.conn: Connection | None = None
        self._flush_scheduled = False
        self._last_drop_log = 0.0
        self._redirected = False
        # On Redis Cluster, each write is one transaction that starts with a write to a
        # key of the partition's slot (DEL of a key that never exists: nothing changes,
        # nothing replicates). Redis 7.0 takes a SPUBLISH in silence on a server that lost
        # the slot to a failover (a replica serves sharded channels to its own clients),
        # even one that waited in CLIENT PAUSE while the failover ran; a transaction with a
        # write in it is checked as a whole when EXEC runs, and refused with MOVED there.
        self._guard = None if guard_key is None else encode_command(b"DEL", guard_key)
        self._transaction: list[tuple[bytes, bytes, _Kind, float]] | None = None
        self._queue_error = ""
        self._wrong_server = False

    def publish(self, channel: str, payload: bytes, history: ChannelOptions | None = None) -> bool:
        if not self.budget.fits(len(payload)):
            self._drop()
            return False
        entry = (
            _HistoryPublish(channel, history)
            if history is not None and history.has_history
            else None
        )
        self.enqueue(self._names.pubsub(channel), payload, entry)
        return True

    def enqueue(self, key: bytes, payload: bytes, kind: _Kind = None) -> None:
        """Queue past the buffer bound (the probe, which must not be dropped)."""
        self._unsent.append((key, payload, kind))
        self.budget.messages += 1
        self.budget.bytes += len(payload)
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
                self.budget.messages,
                self.budget.bytes,
                self.stats.num_dropped,
            )

    def _flush(self) -> None:
        self._flush_scheduled = False
        conn = self.conn
        if conn is None or not conn.is_open or not self._unsent:
            return
        now = time.monotonic()
        parts: list[bytes] = []
        unsent, inflight = self._unsent, self._inflight
        awaited = len(inflight)
        first = True
        if self._guard is not None:
            parts.append(_MULTI_COMMAND)
            parts.append(self._guard)
            inflight.append((b"", b"", _MULTI, 0.0))
            inflight.append((b"", b"", _GUARD, 0.0))
        while unsent:
            key, payload, kind = unsent.popleft()
            if kind is None:
                parts.append(publish_header(key, len(payload), self._publish_command))
                parts.append(payload)
                parts.append(b"\r\n")
            elif isinstance(kind, _HistoryPublish):
                parts.append(self._history_publish(key, payload, kind))
            else:
                parts.append(payload)
            # Only a batch's first command is timed: one round-trip sample per write.
            inflight.append((key, payload, kind, now if first else 0.0))
            first = False
        if self._guard is not None:
            parts.append(_EXEC_COMMAND)
            inflight.append((b"", b"", _EXEC, 0.0))
        conn.send(b"".join(parts), len(inflight) - awaited)

    def _history_publish(self, key: bytes, payload: bytes, entry: _HistoryPublish) -> bytes:
        """EVALSHA of the publish script: offset, append, expiries and PUBLISH in one step."""
        args = publish_args(
            self._names,
            entry.channel,
            payload,
            entry.options,
            message_id=entry.id,
            is_resend=entry.is_resend,
            writer=self._run_id,
        )
        return encode_command(b"EVALSHA", _PUBLISH_SHA, *args)

    def _on_replies(self, replies: list[Reply]) -> None:
        inflight = self._inflight
        for reply in replies:
            if not inflight:
                logger.error("redis publisher: reply %r with no publish awaiting it", reply)
                continue
            entry = inflight.popleft()
            if self._transaction is None:
                if entry[2] is _MULTI:
                    self._transaction, self._queue_error = [], ""
                else:
                    self._settle(entry, reply)
            elif entry[2] is not _EXEC:
                # QUEUED, or refused at once (MOVED: the slot is elsewhere), which aborts it.
                if isinstance(reply, hiredis.ReplyError) and not self._queue_error:
                    self._queue_error = str(reply)
                self._transaction.append(entry)
            else:
                self._on_exec(reply)

    def _on_exec(self, reply: Reply) -> None:
        """The transaction of one write ran (a reply per command), or ran not at all (the
        slot moved, or the server is a replica now): then all of it is sent again."""
        transaction, self._transaction = self._transaction or [], None
        if isinstance(reply, list) and len(reply) == len(transaction):
            for entry, result in zip(transaction, reply, strict=True):
                self._settle(entry, result)
            return
        error = self._queue_error or str(reply)
        self._redirected = True
        self._log_refused(error)
        for key, payload, kind, _ in transaction:
            if kind is not _GUARD:
                self._noscript.append((key, payload, kind))
        if self.conn is not None:
            self.conn.close()

    def _log_refused(self, error: str) -> None:
        self._link.log(
            logging.INFO, "refused", "redis publisher: %s; following the slot", error[:120]
        )

    def _settle(self, entry: tuple[bytes, bytes, _Kind, float], reply: Reply) -> None:
        key, payload, kind, sent_at = entry
        if kind is _GUARD:
            return
        is_error = isinstance(reply, hiredis.ReplyError)
        if (is_error and str(reply).startswith(_SEND_AGAIN)) or self._wrong_server:
            # Reconnect (with Sentinel or Cluster, to wherever the key lives now), and send
            # these again, first.
            text = str(reply) if is_error else ""
            if text.startswith(_REDIRECTS):
                self._redirected = True
            if text.startswith(_WRONG_SERVER):
                self._wrong_server = True
            self._noscript.append((key, payload, kind))
            if self.conn is not None:
                self.conn.close()
            return
        self.budget.messages -= 1
        self.budget.bytes -= len(payload)
        if kind is _COMMAND:
            if is_error:
                logger.warning("redis refused a presence write: %s", reply)
        elif is_error:
            self.stats.num_publish_errors += 1
            logger.warning("redis refused a PUBLISH: %s", reply)
        elif key is not self._untimed_key:
            self.stats.num_published += 1
            if sent_at and self._on_roundtrip is not None:
                self._on_roundtrip(time.monotonic() - sent_at)

    async def run(self) -> None:
        link = self._link
        while not link.is_closing:
            if self._redirected:
                await asyncio.sleep(_REDIRECT_PAUSE_S)
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
            link.log(
                logging.INFO,
                "connected",
                "redis publisher connected to %s",
                link.endpoint.describe(),
            )
            if self._unsent:
                await self._await_resubscribed(
                    REDIRECT_GRACE_S if self._redirected else RESUBSCRIBE_GRACE_S
                )
                logger.info("publishing %d messages held during the outage", len(self._unsent))
            self._redirected = False
            self._wrong_server = False
            self.conn = conn
            self._flush()
            await conn.lost
            self.conn = None
            if link.is_closing:
                return
            self.stats.num_reconnects += 1
            # Unanswered publishes go out again, first and in order (a new write gets a
            # transaction of its own).
            unanswered = [*(self._transaction or ()), *self._inflight]
            self._transaction = None
            self._inflight.clear()
            for key, payload, kind, _ in reversed(unanswered):
                if isinstance(kind, _Marker):
                    continue
                if isinstance(kind, _HistoryPublish):
                    kind.is_resend = True  # it may have gone through: the script checks
                self._unsent.appendleft((key, payload, kind))
            while self._noscript:
                self._unsent.appendleft(self._noscript.pop())
            if self._redirected:
                link.log(
                    logging.INFO,
                    "moved",
                    "redis publisher: a slot moved or is moving; following it",
                )
            else:
                link.log(
                    logging.WARNING,
                    "publisher lost",
                    "redis publisher connection lost to %s; holding messages until it is back",
                    link.endpoint.describe(),
                )

    async def _await_resubscribed(self, grace_s: float) -> None:
        """Hold the outage's messages until subscribers are likely back.

        Published before the other processes resubscribe, they would reach no one. This
        process's own subscriber is awaited; the others reconnect within one backoff ceiling
        of Redis coming back, so that long is allowed for them too.
        """
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._is_subscribed.wait(), RESUBSCRIBE_GRACE_S * 4)
        await asyncio.sleep(grace_s)

    # Presence: skipped while Redis is unreachable (the node writes its members again once
    # it is back).

    def _command(self, *args: bytes) -> None:
        if self.conn is not None:
            self.enqueue(b"", encode_command(*args), _COMMAND)

    def presence_add(
        self, name: bytes, channel: str, client: str, user: str | None, ttl_s: float
    ) -> None:
        clients, processes = self._names.presence_keys(channel)
        ttl_ms = b"%d" % int(ttl_s * 2000)
        self._command(b"HSET", clients, client.encode(), name + b"\n" + (user or "").encode())
        self._command(b"ZADD", processes, b"%.3f" % (time.time() + ttl_s), name)
        self._command(b"PEXPIRE", clients, ttl_ms)
        self._command(b"PEXPIRE", processes, ttl_ms)

    def presence_remove(self, channel: str, client: str) -> None:
        clients, _ = self._names.presence_keys(channel)
        self._command(b"HDEL", clients, client.encode())

    def presence_heartbeat(self, name: bytes, channels: Sequence[str], ttl_s: float) -> None:
        expires = b"%.3f" % (time.time() + ttl_s)
        ttl_ms = b"%d" % int(ttl_s * 2000)
        for channel in channels:
            clients, processes = self._names.presence_keys(channel)
            self._command(b"ZADD", processes, expires, name)
            self._command(b"PEXPIRE", clients, ttl_ms)
            self._command(b"PEXPIRE", processes, ttl_ms)
