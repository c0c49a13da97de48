"""A subscription as the application sees it: one channel's deliveries, in order, held in a
bounded buffer between the socket's reader and the application's ``async for``."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from hub.client.errors import ClientClosed
from hub.client.message import Frame, Message
from hub.core.sequence import Position

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["End", "Subscription", "ack_position"]

logger = logging.getLogger(__name__)


class End(Exception):
    """Marks a subscription's end in its buffer: iteration stops without an error."""


class Buffer:
    """A subscription's deliveries, bounded: a full buffer stops the socket's reader, so a
    slow application slows its own connection (and the hub, past its limit, closes it with
    4008; the client then recovers from its position) instead of growing memory."""

    def __init__(self, size: int) -> None:
        self._items: deque[Message | BaseException] = deque()
        self._size = size
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    async def put(self, item: Message | BaseException) -> None:
        while len(self._items) >= self._size:
            self._writable.clear()
            await self._writable.wait()
        self.put_now(item)

    def put_now(self, item: Message | BaseException) -> None:
        """Past the bound: for the few control items (an end, an error)."""
        self._items.append(item)
        self._readable.set()

    async def get(self) -> Message | BaseException:
        while not self._items:
            self._readable.clear()
            await self._readable.wait()
        item = self._items.popleft()
        self._writable.set()
        return item


class Subscription:
    """One channel's deliveries, in order; iterate it with ``async for``.

    Iteration raises :class:`~hub.client.errors.NotRecovered` or
    :class:`~hub.client.errors.Gap` where messages may be missing, and then goes on: catch
    it, resync, iterate again. It stops after ``unsubscribe()`` or ``close()``, and raises
    :class:`~hub.client.errors.ClientClosed` when the client stopped for good.
    """

    def __init__(
        self,
        channel: str,
        *,
        recover: bool,
        since: Position | None,
        size: int,
        server: bool = False,
    ) -> None:
        self.channel = channel
        #: Made by the server (``Client.server_subscriptions``), not by ``subscribe``: the
        #: client never subscribes to it itself; it lasts until the server unsubscribes it
        #: or the client closes, and after a reconnect it goes on if the server subscribes
        #: the channel again (a connect hook's channels).
        self.server = server
        #: Recover from :attr:`position` on every resubscribe (history channels).
        self.recover = recover
        #: The last position received (history channels only): epoch and offset.
        self.position = since
        self._buffer = Buffer(size)
        self._end: BaseException | None = None
        self._sent_on: ClientConnection | None = None
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        item = await self._buffer.get()
        if isinstance(item, Message):
            return item
        if item is self._end:
            self._buffer.put_now(item)  # iterating again ends the same way
            if isinstance(item, End):
                raise StopAsyncIteration
        raise item

    def _finish(self, end: BaseException) -> None:
        if self._end is None:
            self._end = end
            self._buffer.put_now(end)
        if not self._ready.done():
            self._ready.set_exception(end if not isinstance(end, End) else ClientClosed("closed"))
            self._ready.exception()  # retrieved: a subscribe() that gave up is not an error


def ack_position(frame: Frame, channel: str) -> tuple[Position, bool] | None:
    """(the channel's top, whether the hub recovered) from a subscribe ack; None when the ack
    has no well-formed position for it (a channel without history)."""
    positions = frame.get("positions")
    entry = positions.get(channel) if isinstance(positions, dict) else None
    if not isinstance(entry, dict):
        return None
    epoch, offset = entry.get("epoch"), entry.get("offset")
    if not isinstance(epoch, str) or isinstance(offset, bool) or not isinstance(offset, int):
        logger.warning("hub.client: ignored a malformed position in %s", str(frame)[:200])
        return None
    return Position(epoch, offset), entry.get("recovered") is True
