"""The client's connection loop: failover over its URLs, full-jitter backoff, the token
refresh, each close code's rule (``hub.core.errors.CLOSE_CODES``), and one connection's
session, which resubscribes everything and then reads until the connection closes.

It is written on websockets' asyncio client (a dependency hub already has); the loop is
hand-written because the reconnect rules are hub's own.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from hub.client.errors import ClientClosed
from hub.client.message import Frame, parse_frame
from hub.client.subscription import Subscription
from hub.core.backoff import backoff
from hub.core.errors import CloseCode
from hub.core.protocol import SUBPROTOCOL

__all__ = ["STABLE_CONNECTION_S", "Reconnecting", "TokenSource"]

logger = logging.getLogger(__name__)

#: A callable that returns a fresh JWT, plain or as a coroutine.
TokenSource = Callable[[], "str | Awaitable[str]"]

#: Consecutive 1008 closes after which the client stops: the hub keeps refusing what it does.
_MAX_POLICY_CLOSES: Final = 3
#: Handshake statuses that no retry can fix (401 is retried once with a fresh token).
_REFUSED: Final = frozenset({400, 401, 403, 404})
#: Seconds a connection must stay open before its close starts the backoff over: a hub that
#: acknowledges the subscribe and then closes (1011, in a loop) is retried with a growing
#: delay, not at once after every ack.
STABLE_CONNECTION_S: Final = 5.0


class Reconnecting:
    """Mixed into Client: connecting, reconnecting, and one connection's session."""

    urls: list[str]
    token: str | None
    url: str | None
    num_connects: int
    num_token_refreshes: int
    _get_token: TokenSource | None
    _ssl: ssl.SSLContext | None
    _backoff_initial_s: float
    _backoff_max_s: float
    _connect_timeout_s: float
    _max_message_bytes: int
    _ping_interval_s: float
    _subs: dict[str, Subscription]
    _ws: ClientConnection | None
    _connected: asyncio.Event | None

    if TYPE_CHECKING:

        def _stop(self, end: BaseException, error: ClientClosed | None) -> None: ...
        async def _send_subscribe(self, ws: ClientConnection, sub: Subscription) -> None: ...
        async def _dispatch(self, frame: Frame) -> bool: ...
        def _fail_pending(self, code: int) -> None: ...

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
            tls: dict[str, Any] = {}
            if self._ssl is not None and url[:4].lower() == "wss:":
                tls["ssl"] = self._ssl
            try:
                ws = await connect(
                    url,
                    **tls,
                    subprotocols=[Subprotocol(SUBPROTOCOL)],
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
                opened_at = asyncio.get_running_loop().time()
                code, was_useful = await self._session(url, ws)
                lasted_s = asyncio.get_running_loop().time() - opened_at
                logger.info("hub.client: the connection to %s closed (%d)", url, code)
                if lasted_s >= STABLE_CONNECTION_S:
                    delays = self._delays()
                if was_useful:
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
        acknowledged anything, which clears the count of 1008 closes)."""
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
