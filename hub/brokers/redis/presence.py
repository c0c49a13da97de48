"""Presence on Redis: per channel, a hash of this cluster's clients (client → process and
user) and a zset of the processes that hold them, by expiry.

Writes and join/leave events go through a queue and a connection of their own, never
through the publish pipeline: a subscribe storm once filled the pipeline's held-message
budget with presence writes, and other clients' publishes were refused as if Redis were
down. The queue holds one entry per (channel, client), the latest word on it, so a storm
costs at most one entry per member however much it churns; a join and a leave that meet
there cancel out (nobody is told of a member that came and went unwritten). It is bounded:
past ``max_pending`` new entries are dropped and counted (``num_presence_dropped``), and
their channels are handed to the node's next heartbeat to write again (``take_dropped``). While
Redis is unreachable the queue holds what arrives and writes it once the connection is back;
a write whose reply was lost is written again (presence writes are idempotent; its event is
not sent twice).

One batch is in flight at a time: what arrives meanwhile coalesces, and a batch is written
as one HDEL and one HSET per channel, then the expiries, then the events. Reads go through
the broker's reader, as one script that leaves out the clients of expired processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Collection, Sequence
from typing import Protocol

import hiredis

from hub.brokers.base import BrokerStats, presence_event
from hub.brokers.names import Names
from hub.brokers.redis.link import LogGate, RedisLink
from hub.brokers.redis.resend import resend
from hub.brokers.resp import Connection, Reply, encode_command
from hub.brokers.scripts import PRESENCE_SCRIPT

__all__ = ["RedisPresence"]

logger = logging.getLogger(__name__)

#: Fields per HSET or HDEL: a channel that a storm joined at once is still several commands.
_FIELDS_PER_COMMAND = 500


class RunScript(Protocol):
    """Runs a script on the reader (``RedisReader.run_script``); BrokerUnavailable."""

    def __call__(self, what: str, script: bytes, *args: bytes) -> Awaitable[Reply]: ...


class _Word:
    """The latest word on one client of one channel: there (with its user) or gone, and
    the event still to announce (None: none, or a join and a leave that cancelled out)."""

    __slots__ = ("event", "present", "ttl_s", "user")

    def __init__(self, present: bool, user: str | None, ttl_s: float) -> None:
        self.present = present
        self.user = user
        self.ttl_s = ttl_s
        self.event: bool | None = None

    def announce(self, is_join: bool) -> None:
        # Joins and leaves of one client alternate: two that meet unwritten cancel out.
        self.event = is_join if self.event is None else None


class RedisPresence:
    """A PresenceManager on Redis, with its own bounded queue and connection."""

    def __init__(
        self,
        link: RedisLink,
        *,
        names: Names,
        name: bytes,
        stats: BrokerStats,
        run_script: RunScript,
        max_pending: int,
    ) -> None:
        self._link = link
        self._names = names
        self._name = name  # this process's, in the processes zset
        self._stats = stats
        self._run_script = run_script
        self._max_pending = max_pending
        self._publish_command = b"SPUBLISH" if names.sharded else b"PUBLISH"
        self._pending: dict[tuple[str, str], _Word] = {}
        self._beats: dict[str, float] = {}  # channel → TTL, of heartbeats not yet written
        self._dropped: set[str] = set()
        # The batch written and not yet answered in full, to write again if it is lost.
        self._sent: dict[tuple[str, str], _Word] = {}
        self._awaiting = 0
        self._flush_scheduled = False
        self._drop_log = LogGate()
        self.conn: Connection | None = None
        # No connection until presence is used: most hubs have none.
        self._wanted = asyncio.Event()

    # PresenceManager

    def add(
        self, channel: str, client: str, user: str | None, ttl_s: float, *, announce: bool = False
    ) -> None:
        word = self._word(channel, client, present=True, user=user, ttl_s=ttl_s)
        if word is not None and announce:
            word.announce(True)

    def remove(
        self, channel: str, client: str, user: str | None = None, *, announce: bool = False
    ) -> None:
        word = self._word(channel, client, present=False, user=user, ttl_s=0.0)
        if word is not None and announce:
            word.announce(False)

    def heartbeat(self, channels: Sequence[str], ttl_s: float) -> None:
        beats = self._beats
        for channel in channels:
            beats[channel] = ttl_s
        self._schedule()

    async def read(self, channel: str) -> list[tuple[str, str | None]]:
        clients, processes = self._names.presence_keys(channel)
        reply = await self._run_script(
            f"the presence of {channel}",
            PRESENCE_SCRIPT,
            b"2",
            clients,
            processes,
            b"%.3f" % time.time(),
        )
        members = []
        for i in range(0, len(reply), 2):
            user = reply[i + 1].partition(b"\n")[2].decode()
            members.append((reply[i].decode(), user or None))
        return members

    # The queue

    def _word(
        self, channel: str, client: str, *, present: bool, user: str | None, ttl_s: float
    ) -> _Word | None:
        key = (channel, client)
        word = self._pending.get(key)
        if word is None:
            if len(self._pending) >= self._max_pending:
                self._drop(channel)
                return None
            word = self._pending[key] = _Word(present, user, ttl_s)
            self._schedule()
        else:
            word.present = present
            if present:
                word.user, word.ttl_s = user, ttl_s
        return word

    def take_dropped(self) -> Collection[str]:
        dropped, self._dropped = self._dropped, set()
        return dropped

    def _drop(self, channel: str) -> None:
        self._dropped.add(channel)
        self._stats.num_presence_dropped += 1
        if self._drop_log.allow("dropped", ""):
            logger.warning(
                "presence queue full (%d clients' writes waiting for Redis); dropping presence "
                "writes and join/leave events (%d dropped so far); publishes are not affected",
                len(self._pending),
                self._stats.num_presence_dropped,
            )

    def _schedule(self) -> None:
        self._wanted.set()
        if self.conn is not None and not self._flush_scheduled and not self._awaiting:
            # Everything of this loop turn leaves in one write.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        conn = self.conn
        if conn is None or not conn.is_open or self._awaiting:
            return
        if not self._pending and not self._beats:
            return
        sent, self._pending = self._pending, {}
        beats, self._beats = self._beats, {}
        commands = self._commands(sent, beats)
        self._sent = sent
        self._awaiting = len(commands)
        conn.send(b"".join(commands), len(commands))

    def _commands(
        self, words: dict[tuple[str, str], _Word], beats: dict[str, float]
    ) -> list[bytes]:
        by_channel: dict[str, list[tuple[str, _Word]]] = {channel: [] for channel in beats}
        for (channel, client), word in words.items():
            by_channel.setdefault(channel, []).append((client, word))
        name, names = self._name, self._names
        now = time.time()
        commands: list[bytes] = []
        events: list[bytes] = []
        for channel, entries in by_channel.items():
            clients, processes = names.presence_keys(channel)
            gone = [client.encode() for client, word in entries if not word.present]
            here: list[bytes] = []
            ttl_s = beats.get(channel, 0.0)
            for client, word in entries:
                if word.present:
                    here += (client.encode(), name + b"\n" + (word.user or "").encode())
                    ttl_s = max(ttl_s, word.ttl_s)
                if word.event is not None:
                    payload = presence_event(word.event, client, word.user)
                    events.append(
                        encode_command(self._publish_command, names.pubsub(channel), payload)
                    )
            for i in range(0, len(gone), _FIELDS_PER_COMMAND):
                commands.append(
                    encode_command(b"HDEL", clients, *gone[i : i + _FIELDS_PER_COMMAND])
                )
            step = 2 * _FIELDS_PER_COMMAND
            for i in range(0, len(here), step):
                commands.append(encode_command(b"HSET", clients, *here[i : i + step]))
            if ttl_s:
                ttl_ms = b"%d" % int(ttl_s * 2000)
                commands.append(encode_command(b"ZADD", processes, b"%.3f" % (now + ttl_s), name))
                commands.append(encode_command(b"PEXPIRE", clients, ttl_ms))
                commands.append(encode_command(b"PEXPIRE", processes, ttl_ms))
        # The events last: whoever reads the presence on a join event finds the member.
        commands += events
        return commands

    def _on_replies(self, replies: list[Reply]) -> None:
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                if resend(reply).again and self.conn is not None:
                    # Not here, not now (a failover, a moved slot): reconnect, write again.
                    self.conn.close()
                self._link.log(
                    logging.WARNING, "presence refused", "redis refused a presence write: %s", reply
                )
        self._awaiting -= len(replies)
        if self._awaiting <= 0:
            self._awaiting = 0
            self._sent = {}
            self._schedule()

    def _requeue(self) -> None:
        """The connection was lost with a batch unanswered: its writes go out again (they are
        idempotent), unless a newer word on the same client came meanwhile; its events, which
        may have gone out, do not."""
        pending = self._pending
        for key, word in self._sent.items():
            if key not in pending:
                word.event = None
                pending[key] = word
        self._sent = {}
        self._awaiting = 0

    async def run(self) -> None:
        link = self._link
        await self._wanted.wait()
        while not link.is_closing:
            conn = await link.connect("presence", self._on_replies)
            self.conn = conn
            self._schedule()
            await conn.lost
            self.conn = None
            self._requeue()
