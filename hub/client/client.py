"""The hub.v1 client: one WebSocket, reconnecting on its own, every subscription resumed from
its last position.

It is written on websockets' asyncio client (a dependency hub already has). The connection
loop is hand-written because the reconnect rules are hub's own: each close code's rule from
``hub.core.errors.CLOSE_CODES``, a token refresh on 4001, failover over several URLs, and
recovery of every history channel from the position the application last received.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import logging
import random
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from hub.client.errors import (
    ClientClosed,
    Gap,
    NotConnected,
    NotRecovered,
    PublishFailed,
    RequestRefused,
)
from hub.client.message import Message, message_from_frame, parse_frame
from hub.core.backoff import backoff
from hub.core.channels import validate
from hub.core.errors import CloseCode
from hub.core.jsontext import dump_json
from hub.core.protocol import SUBPROTOCOL, UNAVAILABLE
from hub.core.sequence import Position

__all__ = ["Client", "Subscription", "TokenSource"]

logger = logging.getLogger(__name__)

#: A callable that returns a fresh JWT, plain or as a coroutine.
TokenSource = Callable[[], "str | Awaitable[str]"]

_UNSET: Final[Any] = object()
#: Consecutive 1008 closes after which the client stops: the hub keeps refusing what it does.
_MAX_POLICY_CLOSES: Final = 3
#: Handshake statuses that no retry can fix (401 is retried once with a fresh token).
_REFUSED: Final = frozenset({400, 401, 403, 404})


class _End(Exception):
    """Marks a subscription's end in its buffer: iteration stops without an error."""


class _Buffer:
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

    def __init__(self, channel: str, *, recover: bool, since: Position | None, size: int) -> None:
        self.channel = channel
        #: Recover from :attr:`position` on every resubscribe (history channels).
        self.recover = recover
        #: The last position received (history channels only): epoch and offset.
        self.position = since
        self._buffer = _Buffer(size)
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
            if isinstance(item, _End):
                raise StopAsyncIteration
        raise item

    def _finish(self, end: BaseException) -> None:
        if self._end is None:
            self._end = end
            self._buffer.put_now(end)
        if not self._ready.done():
            self._ready.set_exception(end if not isinstance(end, _End) else ClientClosed("closed"))
            self._ready.exception()  # retrieved: a subscribe() that gave up is not an error


class Client:
    """A hub.v1 client that reconnects and resumes; use it as ``async with Client(url)``.

    ``url`` is one ``ws://``/``wss://`` URL or a list of them: on a failed connect the client
    moves to the next one. After a drop it reconnects with full-jitter backoff (a delay drawn
    from [0, ceiling], the ceiling doubling from ``backoff_initial_s`` up to
    ``backoff_max_s``), resubscribes every subscription and recovers each history channel
    from the last position it received.

    ``token`` is sent as ``Authorization: Bearer``. ``get_token`` (sync or async) is called
    for a fresh one when the hub closes the connection with 4001 (expired) or refuses the
    handshake with 401, and before the first connect when ``token`` is None.

    A publish made while disconnected waits (queued, in order of arrival) up to
    ``publish_timeout_s`` for the connection, with at most ``max_waiting_publishes`` waiting;
    beyond either it raises :class:`~hub.client.errors.NotConnected`. A publish is never
    sent twice: one whose connection drops before its ack raises
    :class:`~hub.client.errors.PublishFailed`.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        token: str | None = None,
        get_token: TokenSource | None = None,
        # Reconnecting
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        connect_timeout_s: float = 10.0,
        # Publishing
        publish_timeout_s: float = 10.0,
        max_waiting_publishes: int = 1000,
        # Limits
        queue_size: int = 10_000,
        max_message_bytes: int = 16 * 1024 * 1024,
        ping_interval_s: float = 20.0,
    ) -> None:
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("Client needs at least one URL")
        for each in self.urls:
            parts = urllib.parse.urlsplit(each)
            if parts.scheme not in ("ws", "wss") or not parts.hostname:
                raise ValueError(f"{each!r} is not a ws:// or wss:// URL")
        if backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        self.token = token
        self._get_token = get_token
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._connect_timeout_s = connect_timeout_s
        self._publish_timeout_s = publish_timeout_s
        self._max_waiting_publishes = max_waiting_publishes
        self._queue_size = queue_size
        self._max_message_bytes = max_message_bytes
        self._ping_interval_s = ping_interval_s

        self._subs: dict[str, Subscription] = {}
        self._pending: dict[int, tuple[asyncio.Future[dict[str, Any]], Subscription | None]] = {}
        self._next_id = 0
        self._ws: ClientConnection | None = None
        self._connected: asyncio.Event | None = None
        self._num_waiting = 0
        self._task: asyncio.Task[None] | None = None
        self._stopped: ClientClosed | None = None
        self._retries: set[asyncio.Task[None]] = set()
        #: The URL of the current connection (None while disconnected).
        self.url: str | None = None
        #: How many connections were opened, and how many times get_token was called.
        self.num_connects = 0
        self.num_token_refreshes = 0

    # Lifecycle

    async def __aenter__(self) -> Client:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start connecting in the background (``async with`` does it)."""
        if self._task is None:
            self._connected = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="hub.client")

    @property
    def is_connected(self) -> bool:
        return self._connected is not None and self._connected.is_set()

    async def wait_connected(self) -> None:
        """Until a connection is open with every subscription sent; raise ClientClosed if the
        client stops first."""
        self._check_open()
        assert self._connected is not None
        await self._race(self._connected.wait())

    async def close(self) -> None:
        """Close the connection and stop; open subscriptions end their iteration."""
        if self._stopped is None:
            self._stop(_End(), ClientClosed("the client was closed"))
        ws = self._ws
        if self._task is not None:
            # First, so that a reader held by a full subscription buffer is not waited for.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if ws is not None:
            await ws.close()

    # Subscribing

    async def subscribe(
        self, channel: str, *, recover: bool = True, since: Position | None = None
    ) -> Subscription:
        """Subscribe and return once the hub acknowledged it (waiting for a connection if
        needed). On a history channel ``since`` starts from a known position (its missed
        messages are replayed, or iteration raises NotRecovered); ``recover=False`` never
        asks for a replay. Raise RequestRefused (``forbidden``, ``bad_channel`` …)."""
        self._check_open()
        channel = validate(channel)
        if channel in self._subs:
            raise ValueError(f"already subscribed to {channel!r}")
        sub = Subscription(channel, recover=recover, since=since, size=self._queue_size)
        self._subs[channel] = sub
        if self.is_connected and self._ws is not None:
            await self._send_subscribe(self._ws, sub)
        try:
            await self._race(asyncio.shield(sub._ready))
        except BaseException:
            if self._subs.get(channel) is sub:
                del self._subs[channel]
            raise
        return sub

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel``; its subscription's iteration ends."""
        sub = self._subs.pop(channel, None)
        if sub is None:
            return
        sub._finish(_End())
        ws = self._ws
        if ws is not None and self.is_connected:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(self._request({"op": "unsubscribe", "channels": [channel]}, None)[1])

    # Publishing

    async def publish(
        self,
        channel: str,
        *,
        data: Any = _UNSET,
        text: str | None = None,
        binary: bytes | None = None,
    ) -> None:
        """Publish exactly one of ``data`` (any JSON value), ``text`` or ``binary``; return
        once the hub acknowledged it. Raise RequestRefused, NotConnected or PublishFailed."""
        given = [data is not _UNSET, text is not None, binary is not None]
        if sum(given) != 1:
            raise ValueError("publish exactly one of data=, text= or binary=")
        body: dict[str, Any] = {"op": "publish", "channel": validate(channel)}
        if data is not _UNSET:
            body["data"] = data
        elif text is not None:
            body["text"] = text
        else:
            assert binary is not None
            body["binary"] = base64.b64encode(binary).decode()
        ws = await self._connection_for_publish()
        future, frame = self._request(body, None)
        try:
            await ws.send(frame)
            reply = await future
        except ConnectionClosed as exc:
            raise PublishFailed(
                f"the connection closed before the publish was sent: {exc}"
            ) from None
        finally:
            self._pending.pop(int(body["id"]), None)
        if reply.get("type") == "error":
            raise RequestRefused(str(reply.get("code")), str(reply.get("message")))

    async def _connection_for_publish(self) -> ClientConnection:
        self._check_open()
        if self.is_connected and self._ws is not None:
            return self._ws
        if self._num_waiting >= self._max_waiting_publishes:
            raise NotConnected(f"disconnected, and {self._num_waiting} publishes wait already")
        self._num_waiting += 1
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                while True:
                    await self.wait_connected()
                    if self._ws is not None:
                        return self._ws
        except TimeoutError:
            raise NotConnected(
                f"no connection to the hub within {self._publish_timeout_s}s"
            ) from None
        finally:
            self._num_waiting -= 1

    # Internals

    def _check_open(self) -> None:
        if self._stopped is not None:
            raise self._stopped
        if self._task is None:
            raise RuntimeError("use 'async with Client(...)' or call start() first")

    async def _race(self, waiting: Awaitable[Any]) -> Any:
        """Await ``waiting``, or raise ClientClosed as soon as the client stops."""
        assert self._task is not None
        task = asyncio.ensure_future(waiting)
        done, _ = await asyncio.wait({task, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        raise self._stopped or ClientClosed("the client stopped")

    def _request(
        self, body: dict[str, Any], sub: Subscription | None
    ) -> tuple[asyncio.Future[dict[str, Any]], str]:
        self._next_id += 1
        body["id"] = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = (future, sub)
        return future, dump_json(body).decode()

    async def _send_subscribe(self, ws: ClientConnection, sub: Subscription) -> None:
        if sub._sent_on is ws:
            return
        sub._sent_on = ws
        body: dict[str, Any] = {"op": "subscribe", "channel": sub.channel}
        if sub.recover and sub.position is not None:
            position = {"epoch": sub.position.epoch, "offset": sub.position.offset}
            body["recover"] = {sub.channel: position}
        _, frame = self._request(body, sub)
        await ws.send(frame)

    def _delays(self) -> Iterator[float]:
        return backoff(initial_s=self._backoff_initial_s, max_s=self._backoff_max_s)

    async def _refresh_token(self) -> bool:
        if self._get_token is None:
            return False
        delays = self._delays()
        while True:  # an auth service that is down for a moment is waited for, with backoff
            try:
                token = self._get_token()
                if inspect.isawaitable(token):
                    token = await token
                if not isinstance(token, str) or not token:
                    raise TypeError(f"get_token returned {type(token).__name__}, not a JWT")
                break
            except Exception as exc:
                logger.warning("hub.client: get_token failed (%r); trying again", exc)
                await asyncio.sleep(next(delays))
        self.token = token
        self.num_token_refreshes += 1
        return True

    async def _run(self) -> None:
        try:
            await self._connect_loop()
        except asyncio.CancelledError:
            raise
        except ClientClosed as exc:
            self._stop(exc, exc)
        except Exception as exc:  # a bug here must reach the application, not vanish
            logger.exception("hub.client stopped on an unexpected error")
            self._stop(ClientClosed(f"unexpected error: {exc!r}"), None)

    async def _connect_loop(self) -> None:
        delays = self._delays()
        index = 0
        policy_closes = 0
        refreshed = False
        if self.token is None and self._get_token is not None:
            await self._refresh_token()
        while True:
            url = self.urls[index % len(self.urls)]
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
            try:
                ws = await connect(
                    url,
                    subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                    additional_headers=headers,
                    open_timeout=self._connect_timeout_s,
                    max_size=self._max_message_bytes,
                    ping_interval=self._ping_interval_s or None,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status == 401 and not refreshed and await self._refresh_token():
                    refreshed = True
                    continue
                if status in _REFUSED:
                    raise ClientClosed(f"{url} refused the handshake", status) from None
                logger.info("hub.client: %s answered %d; trying again", url, status)
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                logger.debug("hub.client: cannot connect to %s: %r", url, exc)
            else:
                refreshed = False
                code, was_useful = await self._session(url, ws)
                logger.info("hub.client: the connection to %s closed (%d)", url, code)
                if was_useful:
                    delays = self._delays()
                    policy_closes = 0
                if code == CloseCode.TOKEN_EXPIRED:
                    if not await self._refresh_token():
                        raise ClientClosed("the token expired; pass get_token= to renew it", code)
                    continue
                if code == CloseCode.NORMAL:
                    raise ClientClosed("the hub closed the connection normally", code)
                if code == CloseCode.POLICY_VIOLATION:
                    policy_closes += 1
                    if policy_closes >= _MAX_POLICY_CLOSES:
                        raise ClientClosed("the hub refused this client's frames again", code)
                    await asyncio.sleep(self._backoff_max_s)
                    continue
                await asyncio.sleep(next(delays))
                continue  # the same URL first: a hub that only restarted comes back there
            index += 1
            await asyncio.sleep(next(delays))

    async def _session(self, url: str, ws: ClientConnection) -> tuple[int, bool]:
        """Resubscribe, then read until the connection closes: (close code, whether the hub
        acknowledged anything, so the backoff starts over)."""
        assert self._connected is not None
        self.num_connects += 1
        was_useful = False
        try:
            # Until every subscription went out on this socket, subscribe() calls made
            # meanwhile included: no await sits between the last check and "connected".
            while todo := [s for s in self._subs.values() if s._sent_on is not ws]:
                for sub in todo:
                    await self._send_subscribe(ws, sub)
            self._ws, self.url = ws, url
            self._connected.set()
            async for raw in ws:
                try:
                    frame = parse_frame(raw)
                    was_useful |= await self._dispatch(frame)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    logger.warning("hub.client: ignored a malformed frame from %s: %s", url, exc)
        except ConnectionClosed:
            pass
        finally:
            self._connected.clear()
            self._ws = self.url = None
            for sub in self._subs.values():
                sub._sent_on = None
        code = ws.close_code if ws.close_code is not None else 1006
        self._fail_pending(code)
        return code, was_useful

    def _fail_pending(self, code: int) -> None:
        reasons: dict[int, str] = {
            CloseCode.MESSAGE_TOO_BIG: "the hub closed the connection: a frame was too big (1009)",
            CloseCode.POLICY_VIOLATION: "the hub refused a frame (1008)",
        }
        why = reasons.get(code, f"the connection closed ({code}) before the hub acknowledged it")
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(PublishFailed(why))
                future.exception()
        self._pending.clear()

    async def _dispatch(self, frame: dict[str, Any]) -> bool:
        kind = frame.get("type")
        if kind == "message":
            sub = self._subs.get(frame["channel"])
            if sub is not None:
                await self._deliver(sub, frame)
            return False
        if kind == "gap":
            sub = self._subs.get(frame["channel"])
            if sub is not None:
                sub.position = Position(str(frame["epoch"]), int(frame["offset"]))
                await sub._buffer.put(Gap(sub.channel, sub.position.epoch, sub.position.offset))
            return False
        if kind in ("ack", "error"):
            entry = self._pending.pop(frame.get("id"), None)  # type: ignore[arg-type]
            if entry is None:
                if kind == "error":
                    logger.warning("hub.client: the hub answered %s", frame)
                return bool(kind == "ack")
            future, sub = entry
            if sub is not None:
                await self._on_subscribe_reply(sub, frame)
            elif not future.done():
                future.set_result(frame)
            return bool(kind == "ack")
        return False  # join/leave and later frame types: nothing to do

    async def _deliver(self, sub: Subscription, frame: dict[str, Any]) -> None:
        position = sub.position
        offset = frame.get("offset", 0)
        if offset and position is not None:
            if offset <= position.offset:
                return  # already delivered: a replay that overlaps what came live
            sub.position = Position(position.epoch, offset)
        await sub._buffer.put(message_from_frame(frame, position.epoch if position else ""))

    async def _on_subscribe_reply(self, sub: Subscription, frame: dict[str, Any]) -> None:
        if self._subs.get(sub.channel) is not sub:
            return  # unsubscribed meanwhile
        if frame.get("type") == "error":
            refused = RequestRefused(str(frame.get("code")), str(frame.get("message")))
            if refused.code == UNAVAILABLE:  # Redis cannot answer the history read right now
                sub._sent_on = None
                self._retry_later(sub)
                return
            del self._subs[sub.channel]
            sub._finish(refused)
            return
        asked = sub.recover and sub.position is not None
        ack = _ack_position(frame, sub.channel)
        if ack is not None:
            top, recovered = ack
            if not asked:
                sub.position = top
            elif not recovered:
                sub.position = top
                await sub._buffer.put(NotRecovered(sub.channel, top.epoch, top.offset))
        if not sub._ready.done():
            sub._ready.set_result(None)

    def _retry_later(self, sub: Subscription) -> None:
        """Send ``sub``'s subscribe again on this connection after a pause (a later
        connection sends it anyway)."""

        async def resend() -> None:
            await asyncio.sleep(self._backoff_max_s * random.random() + self._backoff_initial_s)
            ws = self._ws
            if ws is not None and self._subs.get(sub.channel) is sub and self.is_connected:
                with contextlib.suppress(ConnectionClosed):
                    await self._send_subscribe(ws, sub)

        task = asyncio.create_task(resend())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    def _stop(self, end: BaseException, error: ClientClosed | None) -> None:
        self._stopped = error or ClientClosed("the client stopped")
        for task in self._retries:
            task.cancel()
        for sub in self._subs.values():
            sub._finish(end)
        self._subs.clear()
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(self._stopped)
                future.exception()
        self._pending.clear()


def _ack_position(frame: dict[str, Any], channel: str) -> tuple[Position, bool] | None:
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
