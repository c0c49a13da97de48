"""The publish side of the Redis broker: one connection, pipelined.

Everything published during one event-loop turn leaves in one write. While Redis is
unreachable, messages are held in a bounded buffer and published in order after the reconnect;
unanswered ones are sent again first, and so are those Redis answered with "not here, not
now" (``resend.py``: NOSCRIPT, NOREPLICAS, READONLY, MOVED …). History channels go through
the history script (EVALSHA, reloaded after a reconnect), whose message id makes such a
resend a no-op when the first one went through. Presence has a queue and a connection of its
own (``presence.py``): nothing but publishes (and the probe) takes from the held budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

import hiredis

from hub.brokers.base import BrokerStats
from hub.brokers.names import Names
from hub.brokers.redis.entries import (
    EXEC,
    GUARD,
    MULTI,
    Entry,
    HeldBudget,
    HistoryPublish,
    Kind,
    Marker,
)
from hub.brokers.redis.link import RECONNECT_MAX_S, LogGate, RedisLink
from hub.brokers.redis.resend import resend
from hub.brokers.resp import Connection, Reply, encode_command, publish_header
from hub.brokers.scripts import (
    PRESENCE_SCRIPT,
    PUBLISH_SCRIPT,
    READ_SCRIPT,
    publish_args,
    run_id,
    sha1,
)
from hub.core.namespaces import ChannelOptions

__all__ = ["RESUBSCRIBE_GRACE_S", "RedisPipeline"]

logger = logging.getLogger(__name__)

RESUBSCRIBE_GRACE_S = RECONNECT_MAX_S + 0.5
#: After a redirect, the other processes' subscribers move at the same moment (Redis told
#: them with ``sunsubscribe``), with no backoff: this long covers their reconnect.
REDIRECT_GRACE_S = 0.5
#: Between two tries while a slot migrates (ASK, TRYAGAIN) or the cluster is down.
_REDIRECT_PAUSE_S = 0.05
_PUBLISH_SHA = sha1(PUBLISH_SCRIPT)
_MULTI_COMMAND, _EXEC_COMMAND = encode_command(b"MULTI"), encode_command(b"EXEC")


class RedisPipeline:
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
        #: The run_id of the server this pipeline's connection reaches (the history
        #: script's writer check: see scripts.py).
        self._run_id = b""
        self.stats = stats
        self.budget = budget
        self._is_subscribed = is_subscribed
        # The probe's key: its replies are neither counted nor timed as publishes.
        self._untimed_key = untimed_key
        self._on_roundtrip = on_roundtrip
        # What is not yet written, and what is written but unanswered.
        self._unsent: deque[Entry] = deque()
        self._inflight: deque[Entry] = deque()
        # Answered "not here, not now" (resend.py): sent again first after the reconnect.
        self._resend: list[Entry] = []
        self.conn: Connection | None = None
        self._flush_scheduled = False
        self._drop_log = LogGate()
        # The slot moved or is moving: pause before connecting again, shorten the grace.
        self._redirected = False
        # On Redis Cluster, each write is one transaction that starts with a write to a
        # key of the partition's slot (DEL of a key that never exists: nothing changes,
        # nothing replicates). Redis 7.0 takes a SPUBLISH in silence on a server that lost
        # the slot to a failover (a replica serves sharded channels to its own clients),
        # even one that waited in CLIENT PAUSE while the failover ran; a transaction with a
        # write in it is checked as a whole when EXEC runs, and refused with MOVED there.
        self._guard = None if guard_key is None else encode_command(b"DEL", guard_key)
        self._transaction: list[Entry] | None = None
        self._queue_error = ""
        # A reply said this server is not the key's master: every later one is resent.
        self._wrong_server = False
        # A reply said "not now" (NOREPLICAS, NOSCRIPT) on the right server: nothing more is
        # written, and the connection is closed once every reply is in. Closing at once
        # would resend the commands behind it that Redis already ran: twice, on plain
        # channels.
        self._draining = False

    def publish(self, channel: str, payload: bytes, history: ChannelOptions | None = None) -> bool:
        if not self.budget.fits(len(payload)):
            self._drop()
            return False
        kind = (
            HistoryPublish(channel, history)
            if history is not None and history.has_history
            else None
        )
        self.enqueue(self._names.pubsub(channel), payload, kind)
        return True

    def enqueue(self, key: bytes, payload: bytes, kind: Kind = None) -> None:
        """Queue past the buffer bound (the probe, which must not be dropped)."""
        self._unsent.append(Entry(key, payload, kind))
        self.budget.messages += 1
        self.budget.bytes += len(payload)
        if self.conn is not None and not self._flush_scheduled:
            # Everything published during this loop turn leaves in one write.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _drop(self) -> None:
        self.stats.num_dropped += 1
        if self._drop_log.allow("dropped", ""):
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
        if conn is None or not conn.is_open or not self._unsent or self._draining:
            return
        now = time.monotonic()
        parts: list[bytes] = []
        unsent, inflight = self._unsent, self._inflight
        awaited = len(inflight)
        if self._guard is not None:
            parts.append(_MULTI_COMMAND)
            parts.append(self._guard)
            inflight.append(MULTI)
            inflight.append(GUARD)
        # Only a batch's first command is timed: one round-trip sample per write.
        sent_at = now
        while unsent:
            entry = unsent.popleft()
            kind = entry.kind
            if kind is None:
                parts.append(publish_header(entry.key, len(entry.payload), self._publish_command))
                parts.append(entry.payload)
                parts.append(b"\r\n")
            elif isinstance(kind, HistoryPublish):
                parts.append(self._history_publish(entry.payload, kind))
            entry.sent_at = sent_at
            sent_at = 0.0
            inflight.append(entry)
        if self._guard is not None:
            parts.append(_EXEC_COMMAND)
            inflight.append(EXEC)
        conn.send(b"".join(parts), len(inflight) - awaited)

    def _history_publish(self, payload: bytes, history: HistoryPublish) -> bytes:
        """EVALSHA of the publish script: offset, append, expiries and PUBLISH in one step."""
        args = publish_args(
            self._names,
            history.channel,
            payload,
            history.options,
            message_id=history.id,
            is_resend=history.is_resend,
            writer=self._run_id,
        )
        return encode_command(b"EVALSHA", _PUBLISH_SHA, *args)

    def _on_replies(self, replies: list[Reply]) -> None:
        inflight = self._inflight
        for reply in replies:
            if not inflight:
                logger.error("redis pipeline: reply %r with no command awaiting it", reply)
                continue
            entry = inflight.popleft()
            if self._transaction is None:
                if entry is MULTI:
                    self._transaction, self._queue_error = [], ""
                else:
                    self._settle(entry, reply)
            elif entry is not EXEC:
                # QUEUED, or refused at once (MOVED: the slot is elsewhere), which aborts it.
                if isinstance(reply, hiredis.ReplyError) and not self._queue_error:
                    self._queue_error = str(reply)
                self._transaction.append(entry)
            else:
                self._on_exec(reply)
        if self._draining and not inflight and self.conn is not None:
            self.conn.close()  # every reply is in: reconnect, and send the refused again

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
        self._link.log(
            logging.INFO, "refused", "redis publisher: %s; following the slot", error[:120]
        )
        self._resend.extend(entry for entry in transaction if entry is not GUARD)
        if self.conn is not None:
            self.conn.close()

    def _settle(self, entry: Entry, reply: Reply) -> None:
        if entry is GUARD:
            return
        is_error = isinstance(reply, hiredis.ReplyError)
        if (is_error and self._refused_here(reply)) or self._wrong_server:
            # Reconnect (with Sentinel or Cluster, to wherever the key lives now), and send
            # it again, first.
            self._resend.append(entry)
            if self._wrong_server or self._redirected:
                if self.conn is not None:
                    self.conn.close()
            elif not self._draining:
                self._draining = True
                self._link.log(
                    logging.WARNING,
                    "refused",
                    "redis publisher: %s; holding the refused messages, sending them again "
                    "after a reconnect",
                    str(reply)[:120],
                )
            return
        self.budget.messages -= 1
        self.budget.bytes -= len(entry.payload)
        if is_error:
            self.stats.num_publish_errors += 1
            logger.warning("redis refused a PUBLISH: %s", reply)
        elif entry.key is not self._untimed_key:
            self.stats.num_published += 1
            if entry.sent_at and self._on_roundtrip is not None:
                self._on_roundtrip(time.monotonic() - entry.sent_at)

    def _refused_here(self, error: Reply) -> bool:
        """Whether an error reply means "not here, not now" (to be sent again); it may say
        that the slot moves, or that this server answers for keys it does not own."""
        decision = resend(error)
        self._redirected |= decision.follow
        self._wrong_server |= decision.wrong_server
        return decision.again

    async def run(self) -> None:
        link = self._link
        while not link.is_closing:
            if self._redirected:
                await asyncio.sleep(_REDIRECT_PAUSE_S)
            conn = await link.connect("publisher", self._on_replies)
            if not await self._prepare(conn):
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
            self._draining = False
            self.conn = conn
            self._flush()
            await conn.lost
            self.conn = None
            if link.is_closing:
                return
            self.stats.num_reconnects += 1
            self._requeue()

    async def _prepare(self, conn: Connection) -> bool:
        """Load the scripts, and learn the server's run_id; False when that failed."""
        try:
            for script in (PUBLISH_SCRIPT, READ_SCRIPT, PRESENCE_SCRIPT):
                await conn.command(b"SCRIPT", b"LOAD", script)
            self._run_id = run_id(await conn.command(b"INFO", b"server"))
        except (TimeoutError, ConnectionError, hiredis.ReplyError) as exc:
            logger.warning("redis publisher: cannot load the history scripts: %s", exc)
            return False
        return True

    def _requeue(self) -> None:
        """After a lost connection: the resends, then the unanswered, go out again first and
        in order (a new write gets a transaction of its own)."""
        link = self._link
        unanswered = [*(self._transaction or ()), *self._inflight]
        self._transaction = None
        self._inflight.clear()
        for entry in reversed(unanswered):
            kind = entry.kind
            if isinstance(kind, Marker):
                continue
            if isinstance(kind, HistoryPublish):
                kind.is_resend = True  # it may have gone through: the script checks
            self._unsent.appendleft(entry)
        while self._resend:
            self._unsent.appendleft(self._resend.pop())
        if self._redirected:
            link.log(
                logging.INFO, "moved", "redis publisher: a slot moved or is moving; following it"
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
