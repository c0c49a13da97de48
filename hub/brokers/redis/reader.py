"""The request side of the Redis broker: history reads, and the scripts of presence reads
(``presence.py``), on a connection of their own so that a read never waits behind the
publish pipeline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import hiredis

from hub.brokers.names import Names
from hub.brokers.redis.link import RedisLink
from hub.brokers.redis.resend import MIGRATING, NO_SCRIPT, resend
from hub.brokers.resp import Connection, Reply
from hub.brokers.scripts import (
    PRESENCE_SCRIPT,
    READ_SCRIPT,
    new_epoch,
    sha1,
    unpublished_meta_ttl,
)
from hub.core.envelope import decode_envelope
from hub.core.errors import BrokerUnavailable
from hub.core.namespaces import ChannelOptions
from hub.core.sequence import HistoryPage

__all__ = ["RedisReader"]

logger = logging.getLogger(__name__)

#: While a slot migrates (ASK, TRYAGAIN), a read waits this long between tries.
_MIGRATING_PAUSES_S = (0.05, 0.1, 0.2, 0.4, 0.8)
_SHAS = {READ_SCRIPT: sha1(READ_SCRIPT), PRESENCE_SCRIPT: sha1(PRESENCE_SCRIPT)}


class RedisReader:
    def __init__(self, link: RedisLink, *, names: Names) -> None:
        self._link = link
        self._names = names
        self.conn: Connection | None = None

    async def run(self) -> None:
        while not self._link.is_closing:
            conn = await self._link.connect("reader", _unexpected_reply)
            self.conn = conn
            await conn.lost
            self.conn = None

    async def run_script(self, what: str, script: bytes, *args: bytes) -> Reply:
        """EVALSHA, or EVAL when Redis lost its script cache; BrokerUnavailable on failure
        (``what``, the thing read, says what in its message)."""

        async def attempt(conn: Connection) -> Reply:
            try:
                return await conn.command(b"EVALSHA", _SHAS[script], *args)
            except hiredis.ReplyError as exc:
                if resend(exc) is not NO_SCRIPT:
                    raise
                return await conn.command(b"EVAL", script, *args)

        return await self._call(what, ("read", "reading"), attempt)

    async def delete_history(self, channel: str) -> bool:
        """Delete the channel's stream and meta (one slot): the next publish starts a new
        epoch at offset 1. True when there was something to delete. BrokerUnavailable."""
        keys = self._names.history_keys(channel)
        deleted = await self._call(
            f"the history of {channel}",
            ("deleted", "deleting"),
            lambda conn: conn.command(b"DEL", *keys),
        )
        return bool(deleted)

    async def _call(
        self, what: str, verbs: tuple[str, str], attempt: Callable[[Connection], Awaitable[Reply]]
    ) -> Reply:
        """``attempt`` on the reader's connection, again while the slot migrates (ASK,
        TRYAGAIN); BrokerUnavailable when it fails, saying what could not be ``verbs``."""
        conn = self.conn
        if conn is None or not conn.is_open:
            raise BrokerUnavailable(f"Redis is unreachable: {what} cannot be {verbs[0]} now")
        try:
            for pause in _MIGRATING_PAUSES_S:
                try:
                    return await attempt(conn)
                except hiredis.ReplyError as exc:
                    decision = resend(exc)
                    if decision is MIGRATING:
                        # The slot is migrating: it is served from its new owner soon.
                        await asyncio.sleep(pause)
                        continue
                    if decision.wrong_server:
                        conn.close()  # connect again, to the slot's owner
                    raise
            raise hiredis.ReplyError("TRYAGAIN the slot is still migrating")
        except (TimeoutError, ConnectionError, hiredis.ReplyError) as exc:
            raise BrokerUnavailable(f"{verbs[1]} {what} failed: {exc}") from exc

    async def read_history(
        self, channel: str, *, since: int | None, limit: int, options: ChannelOptions
    ) -> HistoryPage:
        stream, meta = self._names.history_keys(channel)
        reply = await self.run_script(
            f"the history of {channel}",
            READ_SCRIPT,
            b"2",
            stream,
            meta,
            new_epoch(),
            unpublished_meta_ttl(options),
            b"" if since is None else b"%d-0" % (since + 1),
            b"%d" % limit,
        )
        return _history_page(reply, newest_first=since is None)


def _unexpected_reply(replies: list[Reply]) -> None:
    logger.error("redis reader: %d replies that no request awaited", len(replies))


def _history_page(reply: Reply, *, newest_first: bool) -> HistoryPage:
    """The read script's reply: [epoch, top, [[b"<offset>-0", [b"d", envelope, ...]], ...]]."""
    epoch, top, entries = reply
    epoch_text = epoch.decode()
    messages = []
    for entry_id, fields in reversed(entries) if newest_first else entries:
        m = decode_envelope(fields[1])
        m.offset = int(entry_id.partition(b"-")[0])
        m.epoch = epoch_text
        messages.append(m)
    return HistoryPage(epoch_text, int(top), messages)
