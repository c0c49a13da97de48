"""The hub.v1 client: one WebSocket, reconnecting on its own, every subscription resumed from
its last position.

This module is the application's side: subscribe, unsubscribe, publish, history and presence
reads, start and close. The connection loop (failover, backoff, token refresh, close codes)
is ``connection.py``; requests and their answers ``requests.py``; a subscription and its
bounded buffer ``subscription.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Final, TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hub.client.connection import Reconnecting, TokenSource, hub_urls, tls_context
from hub.client.errors import ClientClosed, NotConnected, PublishFailed, RequestRefused
from hub.client.message import (
    Frame,
    History,
    Presence,
    history_from_frame,
    presence_from_frame,
)
from hub.client.requests import Requests, SessionInfo
from hub.client.subscription import End, Subscription
from hub.core.channels import validate
from hub.core.sequence import Position

__all__ = ["Client", "Subscription", "TokenSource"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_UNSET: Final = object()


class Client(Reconnecting, Requests):
    """A hub.v1 client that reconnects and resumes; use it as ``async with Client(url)``.

    ``url`` is one ``ws://``/``wss://`` URL or a list of them: on a failed connect the client
    moves to the next one. After a drop it reconnects with full-jitter backoff (a delay drawn
    from [0, ceiling], the ceiling doubling from ``backoff_initial_s`` up to
    ``backoff_max_s``), resubscribes every subscription and recovers each history channel
    from the last position it received.

    ``wss://`` URLs verify the hub's certificate against the system's trust store
    (``SSL_CERT_FILE`` names another bundle); ``ca_file`` adds the certificates of a PEM file
    (a private CA, or a self-signed hub's own certificate); ``insecure=True`` verifies
    nothing, for a test hub only. Why a connect failed is logged at WARNING, once per 5 s
    per URL and reason.

    ``token`` is sent as ``Authorization: Bearer``. ``get_token`` (sync or async) is called
    for a fresh one when the hub closes the connection with 4001 (expired) or refuses the
    handshake with 401, and before the first connect when ``token`` is None.

    ``ssl`` is the TLS context of the ``wss://`` URLs (default: the system's CAs).

    A publish made while disconnected waits (queued, in order of arrival) up to
    ``publish_timeout_s`` for the connection, with at most ``max_waiting_publishes`` waiting;
    beyond either it raises :class:`~hub.client.errors.NotConnected`. A publish is never
    sent twice: one whose connection drops before its ack raises
    :class:`~hub.client.errors.PublishFailed`.

    A WebSocket ping goes out every ``ping_interval_s``; a hub whose pong is ``ping_timeout_s``
    late is abandoned (an RST) and the client fails over to the next URL, so a partitioned
    or frozen hub is left within ``ping_interval_s + ping_timeout_s`` (10 s by default).
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        token: str | None = None,
        get_token: TokenSource | None = None,
        headers: Mapping[str, str] | None = None,
        # TLS (wss://)
        ca_file: str | os.PathLike[str] | None = None,
        insecure: bool = False,
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
        ping_interval_s: float = 5.0,
        ping_timeout_s: float = 5.0,
    ) -> None:
        self.urls = hub_urls(url)
        if backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        self.token = token
        self._get_token = get_token
        self._headers = dict(headers or {})  # a session cookie for a connect hook, say
        self._tls = tls_context(ca_file, insecure)
        self._insecure = insecure
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._connect_timeout_s = connect_timeout_s
        self._publish_timeout_s = publish_timeout_s
        self._max_waiting_publishes = max_waiting_publishes
        self._queue_size = queue_size
        self._max_message_bytes = max_message_bytes
        self._ping_interval_s = ping_interval_s
        self._ping_timeout_s = ping_timeout_s

        self._subs: dict[str, Subscription] = {}
        self.session: SessionInfo | None = None
        self._pending: dict[int, tuple[asyncio.Future[Frame], Subscription | None]] = {}
        self._next_id = 0
        self._ws: ClientConnection | None = None
        self._connected: asyncio.Event | None = None
        self._num_waiting = 0
        self._task: asyncio.Task[None] | None = None
        self._stopped: ClientClosed | None = None
        self._retries: set[asyncio.Task[None]] = set()
        #: Server-side subscriptions not yet taken by ``server_subscriptions``, and the
        #: callbacks of ``on_server_subscription``.
        self._server_subs: asyncio.Queue[Subscription | None] = asyncio.Queue()
        self._server_callbacks: list[Callable[[Subscription], None]] = []
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
            self._stop(End(), ClientClosed("the client was closed"))
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
        sub._finish(End())
        ws = self._ws
        if ws is not None and self.is_connected:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(self._request({"op": "unsubscribe", "channels": [channel]}, None)[2])

    # Server-side subscriptions

    def server_subscriptions(self) -> AsyncIterator[Subscription]:
        """Each subscription the server makes for this connection (``POST /api/subscribe``,
        a connect hook's channels), as it arrives: iterate each for its messages, like one
        of ``subscribe``'s. Ends when the client closes. Read it from one task only; the
        subscriptions made before it is read wait for it."""
        return self._iterate_server_subscriptions()

    async def _iterate_server_subscriptions(self) -> AsyncIterator[Subscription]:
        while self._stopped is None:
            sub = await self._server_subs.get()
            if sub is None:
                return
            yield sub

    def on_server_subscription(self, callback: Callable[[Subscription], None]) -> None:
        """Call ``callback(subscription)`` for each subscription the server makes, at once
        (before its first message is buffered); the other way to take them."""
        self._server_callbacks.append(callback)

    def _announce(self, sub: Subscription) -> None:
        for callback in self._server_callbacks:
            try:
                callback(sub)
            except Exception:
                logger.exception("hub.client: an on_server_subscription callback failed")
        if not self._server_callbacks:
            self._server_subs.put_nowait(sub)

    # Publishing

    async def publish(
        self,
        channel: str,
        *,
        data: object = _UNSET,
        text: str | None = None,
        binary: bytes | None = None,
    ) -> None:
        """Publish exactly one of ``data`` (any JSON value), ``text`` or ``binary``; return
        once the hub acknowledged it. Raise RequestRefused, NotConnected or PublishFailed."""
        given = [data is not _UNSET, text is not None, binary is not None]
        if sum(given) != 1:
            raise ValueError("publish exactly one of data=, text= or binary=")
        body: Frame = {"op": "publish", "channel": validate(channel)}
        if data is not _UNSET:
            body["data"] = data
        elif text is not None:
            body["text"] = text
        else:
            assert binary is not None
            body["binary"] = base64.b64encode(binary).decode()
        ws = await self._connection_for_publish()
        try:
            reply = await self._exchange(ws, body)
        except ConnectionClosed as exc:
            raise PublishFailed(
                f"the connection closed before the publish was sent: {exc}"
            ) from None
        _raise_refused(reply)

    # Reading

    async def history(
        self, channel: str, *, limit: int | None = None, since: Position | None = None
    ) -> History:
        """The messages a history channel keeps, oldest first: the last ``limit`` (the hub's
        default 100, at most 1000), or up to ``limit`` after ``since``; and the channel's top.
        Raise RequestRefused (``history_off``, ``unrecoverable_position`` for a ``since`` the
        history no longer holds, ``forbidden``, ``too_large``, ``unavailable``) or
        NotConnected."""
        body: Frame = {"op": "history", "channel": validate(channel)}
        if limit is not None:
            body["limit"] = limit
        if since is not None:
            body["since"] = {"epoch": since.epoch, "offset": since.offset}
        return history_from_frame(await self._read(body))

    async def presence(self, channel: str) -> Presence:
        """Who is subscribed to ``channel`` on every hub. Raise RequestRefused
        (``presence_off``, ``forbidden``, ``unavailable``) or NotConnected."""
        return presence_from_frame(
            await self._read({"op": "presence", "channel": validate(channel)})
        )

    async def _read(self, body: Frame) -> Frame:
        """The answer to a read; one whose connection drops is asked again on the next
        (reading twice does no harm), all within ``publish_timeout_s``."""
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                while True:
                    ws = await self._connection_for_publish()
                    try:
                        reply = await self._exchange(ws, dict(body))
                        break
                    except (ConnectionClosed, PublishFailed):
                        await asyncio.sleep(self._backoff_initial_s)  # the drop is noticed
        except TimeoutError:
            raise NotConnected(
                f"no answer from the hub within {self._publish_timeout_s}s"
            ) from None
        _raise_refused(reply)
        return reply

    async def _exchange(self, ws: ClientConnection, body: Frame) -> Frame:
        """Send one request on ``ws`` and return the hub's answer, an error frame included;
        ConnectionClosed, or PublishFailed when the connection closes before the answer."""
        request_id, future, frame = self._request(body, None)
        try:
            await ws.send(frame)
            return await future
        finally:
            self._pending.pop(request_id, None)

    async def rpc(self, method: str, params: object = None) -> object:
        """Call ``method`` on the application's backend through the hub (``--proxy-rpc-url``)
        and return its answer. Raise RequestRefused (``code`` "refused" when the backend said
        no), NotConnected or PublishFailed (the connection closed before the answer)."""
        ws = await self._connection_for_publish()
        request_id, future, frame = self._request(
            {"op": "rpc", "method": method, "params": params}, None
        )
        try:
            await ws.send(frame)
            reply = await future
        except ConnectionClosed as exc:
            raise PublishFailed(f"the connection closed before the rpc was sent: {exc}") from None
        finally:
            self._pending.pop(request_id, None)
        if reply.get("type") == "error":
            raise RequestRefused(str(reply.get("code")), str(reply.get("message")))
        return reply.get("result")

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

    async def _race(self, waiting: Awaitable[_T]) -> _T:
        """Await ``waiting``, or raise ClientClosed as soon as the client stops."""
        assert self._task is not None
        task = asyncio.ensure_future(waiting)
        done, _ = await asyncio.wait({task, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        raise self._stopped or ClientClosed("the client stopped")

    def _stop(self, end: BaseException, error: ClientClosed | None) -> None:
        self._stopped = error or ClientClosed("the client stopped")
        for task in self._retries:
            task.cancel()
        for sub in self._subs.values():
            sub._finish(end)
        self._subs.clear()
        self._server_subs.put_nowait(None)
        self._fail_requests(self._stopped)


def _raise_refused(reply: Frame) -> None:
    """RequestRefused for an error frame."""
    if reply.get("type") == "error":
        raise RequestRefused(str(reply.get("code")), str(reply.get("message")))
