"""The client's connection loop: failover over its URLs, full-jitter backoff, the token
refresh, each close code's rule (``hub.core.errors.CLOSE_CODES``), and one connection's
session, which resubscribes everything and then reads until the connection closes.

Why a connect failed is logged at WARNING, once per ``CONNECT_WARNING_INTERVAL_S`` per URL
and reason (a hub whose certificate is not trusted is retried for ever, so it must say so).

It is written on websockets' asyncio client (a dependency hub already has); the loop is
hand-written because the reconnect rules are hub's own.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import json
import logging
import os
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from hub.client.errors import ClientClosed
from hub.client.keepalive import keep_alive
from hub.client.message import Frame, parse_frame
from hub.client.subscription import Subscription
from hub.core.backoff import backoff
from hub.core.errors import CloseCode
from hub.core.protocol import SUBPROTOCOL

__all__ = [
    "CONNECT_WARNING_INTERVAL_S",
    "STABLE_CONNECTION_S",
    "Reconnecting",
    "TokenSource",
    "refresh_delay",
    "tls_context",
    "token_exp",
]

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
#: Seconds between two warnings of the same failure to connect to the same URL.
CONNECT_WARNING_INTERVAL_S = 5.0


def hub_urls(url: str | Sequence[str]) -> list[str]:
    """The hubs to connect to, in failover order; ValueError on one that is not ws(s)://."""
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise ValueError("Client needs at least one URL")
    for each in urls:
        parts = urllib.parse.urlsplit(each)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"{each!r} is not a ws:// or wss:// URL")
    return urls


def tls_context(ca_file: str | os.PathLike[str] | None, insecure: bool) -> ssl.SSLContext | None:
    """The TLS context of wss:// connections: None for the system's trust store (which
    ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` change); with ``ca_file``, that store plus the
    certificates of that PEM file; ``insecure``: no verification at all. ValueError when
    the file cannot be loaded, or when both are given."""
    if ca_file is not None and insecure:
        raise ValueError("pass ca_file= or insecure=True, not both")
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file is None:
        return None
    try:
        return ssl.create_default_context(cafile=os.fspath(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the CA file {os.fspath(ca_file)!r}: {exc}") from None


def _why(exc: BaseException, connect_timeout_s: float) -> str:
    """Why a connect failed, in words, with what to do where hub can tell."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"its TLS certificate is not trusted ({exc.verify_message}); pass ca_file= (the "
            "hub's CA or certificate, PEM), or set SSL_CERT_FILE"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc}); is it a wss:// hub?"
    if isinstance(exc, TimeoutError):
        return f"no handshake within connect_timeout_s={connect_timeout_s:g}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, InvalidStatus):
        return f"it answered HTTP {exc.response.status_code}"
    return f"{type(exc).__name__}: {exc}"


class _FailureLog:
    """WARNING for each reason a connect failed, at most once per
    ``CONNECT_WARNING_INTERVAL_S`` per URL and reason, with how many were not logged."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def failed(self, url: str, why: str, exc: BaseException) -> None:
        now = time.monotonic()
        last = self._last.get((url, why))
        if last is not None and now - last[0] < CONNECT_WARNING_INTERVAL_S:
            self._last[url, why] = (last[0], last[1] + 1)
            return
        self._last[url, why] = (now, 0)
        again = f" ({last[1]} more failures like it since)" if last and last[1] else ""
        # The exception rides along (``record.hub_connect``) for callers that word it
        # their own way, such as the command line's flags.
        logger.warning(
            "hub.client: cannot connect to %s: %s; trying again%s",
            url,
            why,
            again,
            extra={"hub_connect": (url, exc)},
        )


#: How long before a token's ``exp`` the client sends a fresh one in band (or half the
#: remaining lifetime, if that is shorter).
REFRESH_AHEAD_S: Final = 30.0


def token_exp(token: str) -> float | None:
    """A JWT's ``exp``, read from its payload without verifying it (the hub verifies)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


def refresh_delay(exp: float, now: float) -> float:
    """Seconds from ``now`` until a token expiring at ``exp`` should be replaced."""
    left = exp - now
    return max(0.0, left - min(REFRESH_AHEAD_S, left / 2))


class Reconnecting:
    """Mixed into Client: connecting, reconnecting, and one connection's session."""

    urls: list[str]
    token: str | None
    url: str | None
    num_connects: int
    num_token_refreshes: int
    _get_token: TokenSource | None
    _headers: dict[str, str]
    _ssl: ssl.SSLContext | None
    _backoff_initial_s: float
    _backoff_max_s: float
    _connect_timeout_s: float
    _max_message_bytes: int
    _ping_interval_s: float
    _ping_timeout_s: float
    #: The loop time of the last frame read on the current connection (for the keepalive).
    _heard_at: float = 0.0
    _tls: ssl.SSLContext | None
    _insecure: bool
    _subs: dict[str, Subscription]
    _ws: ClientConnection | None
    _connected: asyncio.Event | None

    if TYPE_CHECKING:

        def _request(
            self, body: Frame, sub: Subscription | None
        ) -> tuple[int, asyncio.Future[Frame], str]: ...
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

    async def _refresh_in_band(self, ws: ClientConnection) -> None:
        """Before the token expires, send a fresh one (``{"op":"refresh"}``): the connection
        keeps its subscriptions, and the hub moves its expiry. A refresh that fails leaves
        the 4001 close, and the reconnect with a fresh token, to happen as before."""
        while True:
            exp = token_exp(self.token) if self.token else None
            if exp is None:
                return
            await asyncio.sleep(refresh_delay(exp, time.time()))
            if not await self._refresh_token():
                return
            assert self.token is not None
            fresh = token_exp(self.token)
            if fresh is not None and fresh <= exp:
                # get_token has nothing fresher yet: the 4001 at exp reconnects with a new one.
                logger.info("hub.client: get_token returned no later expiry; not refreshing")
                return
            _, answer, frame = self._request({"op": "refresh", "token": self.token}, None)
            try:
                await ws.send(frame)
                reply = await answer
            except Exception as exc:  # ConnectionClosed, or PublishFailed when it closes
                logger.debug("hub.client: the in-band refresh did not complete: %r", exc)
                return
            if reply.get("type") != "ack":
                logger.warning("hub.client: the hub refused the refreshed token: %s", reply)
                return

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
        failures = _FailureLog()
        if self._insecure and any(url.startswith("wss://") for url in self.urls):
            logger.warning(
                "hub.client: insecure=True: the hub's TLS certificate is not verified, so "
                "anyone on the path can read and change this connection; never in production"
            )
        if self.token is None and self._get_token is not None:
            await self._refresh_token()
        while True:
            url = self.urls[index % len(self.urls)]
            headers = dict(self._headers)
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            tls: dict[str, Any] = {"ssl": self._tls} if self._tls and url.startswith("wss:") else {}
            try:
                ws = await connect(
                    url,
                    subprotocols=[Subprotocol(SUBPROTOCOL)],
                    additional_headers=headers,
                    open_timeout=self._connect_timeout_s,
                    max_size=self._max_message_bytes,
                    ping_interval=None,  # hub.client.keepalive: a silent hub is abandoned
                    **tls,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status == 401 and not refreshed and await self._refresh_token():
                    refreshed = True
                    continue
                if status in _REFUSED:
                    raise ClientClosed(f"{url} refused the handshake", status) from None
                failures.failed(url, _why(exc, self._connect_timeout_s), exc)
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                failures.failed(url, _why(exc, self._connect_timeout_s), exc)
            else:
                refreshed = False
                opened_at = asyncio.get_running_loop().time()
                code, was_useful, silent = await self._session(url, ws)
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
                if code == CloseCode.DISCONNECTED:
                    raise ClientClosed("a backend disconnected this user (4009)", code)
                if code == CloseCode.POLICY_VIOLATION:
                    policy_closes += 1
                    if policy_closes >= _MAX_POLICY_CLOSES:
                        raise ClientClosed("the hub refused this client's frames again", code)
                    await asyncio.sleep(self._backoff_max_s)
                    continue
                if not silent:
                    await asyncio.sleep(next(delays))
                    continue  # the same URL first: a hub that only restarted comes back there
                # A hub that went silent (a partition, a frozen host) would only hang the next
                # connect until connect_timeout_s: fail over to the next URL instead.
                logger.warning("hub.client: %s stopped answering pings; failing over", url)
            index += 1
            await asyncio.sleep(next(delays))

    async def _session(self, url: str, ws: ClientConnection) -> tuple[int, bool, bool]:
        """Resubscribe, then read until the connection closes: (close code, whether the hub
        acknowledged anything, which clears the count of 1008 closes, and whether it was
        abandoned because the hub stopped answering pings)."""
        assert self._connected is not None
        self.num_connects += 1
        was_useful = False
        refresher: asyncio.Task[None] | None = None
        pinger: asyncio.Task[bool] | None = None
        loop = asyncio.get_running_loop()
        self._heard_at = loop.time()
        if self._ping_interval_s > 0:
            pinger = asyncio.create_task(
                keep_alive(
                    ws,
                    interval_s=self._ping_interval_s,
                    timeout_s=self._ping_timeout_s,
                    heard_at=lambda: self._heard_at,
                )
            )
        try:
            # Until every subscription went out on this socket, subscribe() calls made
            # meanwhile included: no await sits between the last check and "connected".
            while todo := [s for s in self._subs.values() if s._sent_on is not ws]:
                for sub in todo:
                    await self._send_subscribe(ws, sub)
            self._ws, self.url = ws, url
            self._connected.set()
            if self._get_token is not None:
                refresher = asyncio.create_task(self._refresh_in_band(ws))
            async for raw in ws:
                self._heard_at = loop.time()
                try:
                    frame = parse_frame(raw)
                    was_useful |= await self._dispatch(frame)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    logger.warning("hub.client: ignored a malformed frame from %s: %s", url, exc)
        except ConnectionClosed:
            pass
        finally:
            if refresher is not None:
                refresher.cancel()
            silent = pinger is not None and pinger.done() and pinger.result()
            if pinger is not None:
                pinger.cancel()
            self._connected.clear()
            self._ws = self.url = None
            for sub in self._subs.values():
                sub._sent_on = None
        code = ws.close_code if ws.close_code is not None else 1006
        self._fail_pending(code)
        return code, was_useful, silent
