"""``GET /sse/<channel>``: a channel as Server-Sent Events, for networks that block WebSockets.

It is served on the HTTP API's listener, and holds no state that another instance would need:
a reader that reconnects anywhere resumes from its ``Last-Event-ID`` (``<epoch>:<offset>`` on
a history channel) through the same join-at-a-position as hub.v1's ``recover``.

A stream is a fan-out subscriber like a WebSocket: the events of a batch are encoded once
(``hub.core.formats.SSE``) and each stream gets one write, straight to its transport, so a
slow reader is bounded by ``--max-buffered-bytes`` and then cut off; it reconnects with its
last id and recovers what it missed. Keepalive comments keep idle streams open through
proxies. On shutdown every stream ends cleanly (the chunked body's last chunk), and the
browser's EventSource reconnects to another instance after the stream's ``retry``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping

from aiohttp import web

from hub.core.auth import Authenticator, AuthError, Grant, may_subscribe, token_from_request
from hub.core.errors import BrokerUnavailable, ProtocolError
from hub.core.event_stream import EXPIRED, KEEPALIVE, parse_event_id, sse_preamble
from hub.core.hooks import (
    UNAUTHORIZED_CODES,
    HookRefused,
    HookUnavailable,
    connect_request,
)
from hub.core.protocol import BAD_FIELD, FORBIDDEN, UNAVAILABLE
from hub.core.sequence import Position
from hub.hooks.proxy import HookProxy
from hub.http.stream import SseClient, open_body, stream_client
from hub.node import Node
from hub.node.users import SSE

__all__ = ["SseStreams", "client_grant"]

logger = logging.getLogger(__name__)

#: The reconnect delays (ms) given to EventSource, drawn per stream so that the readers of
#: an instance that shuts down do not all come back in the same instant.
RETRY_MS = (500, 3000)

#: How long shutdown waits for the streams' handlers to end.
CLOSE_TIMEOUT_S = 5.0


def client_grant(authenticator: Authenticator | None, request: web.Request) -> Grant | None:
    """The grant of the client token in ``Authorization: Bearer`` or ``?token=``; None when
    auth is off. Raise AuthError (401) when it is missing or invalid."""
    if authenticator is None:
        return None
    token = token_from_request(request.headers.get("Authorization"), request.query_string)
    if token is None:
        raise AuthError("a token is required: send ?token=<JWT> or 'Authorization: Bearer <JWT>'")
    return authenticator.verify(token)


async def _prepare(authenticator: Authenticator | None, request: web.Request) -> None:
    """A key set's refetch for a token whose kid it does not know (--jwt-jwks-url)."""
    if authenticator is not None and authenticator.keys is not None:
        token = token_from_request(request.headers.get("Authorization"), request.query_string)
        if token is not None:
            await authenticator.prepare(token)


class SseStreams:
    """The ``/sse/<channel>`` endpoint and the streams it holds open."""

    def __init__(
        self,
        *,
        node: Node,
        authenticator: Authenticator | None,
        keepalive_s: float,
        max_buffered_bytes: int,
        cors_headers: Callable[[web.Request], Mapping[str, str]],
        hooks: HookProxy | None = None,
        forwarded_headers: tuple[str, ...] = (),
    ) -> None:
        self.node = node
        #: The backend's hooks (connect, subscribe); None when none is configured.
        self.hooks = hooks
        self.forwarded_headers = forwarded_headers
        self.max_buffered_bytes = max_buffered_bytes
        self.authenticator = authenticator
        self.keepalive_s = keepalive_s
        #: request → the CORS headers of its answer (an Origin refused raises 403).
        self.cors_headers = cors_headers
        self.clients: set[SseClient] = set()
        #: One future per open stream, done when its handler has finished.
        self._handlers: set[asyncio.Future[None]] = set()
        self.is_closing = False
        self.num_streams_total = 0

    async def stream(self, request: web.Request, channel: str) -> web.StreamResponse:
        if self.is_closing:
            raise ProtocolError(UNAVAILABLE, "the hub is shutting down; reconnect")
        headers = self.cors_headers(request)
        if self.hooks is None:
            await _prepare(self.authenticator, request)
            grant = client_grant(self.authenticator, request)
            user = grant.sub if grant is not None else None
            allowed = may_subscribe(grant, user, channel)
        else:
            # The grant's globs (or the subscribe hook) were checked there; a personal
            # channel stays its user's alone.
            grant = await self._hooked_grant(request, channel)
            user = grant.sub if grant is not None else None
            allowed = may_subscribe(None, user, channel)
        if not allowed:
            raise ProtocolError(FORBIDDEN, f"the token may not subscribe to {channel}")
        last_id = request.headers.get("Last-Event-ID", request.query.get("last_event_id"))
        try:
            since = parse_event_id(last_id) if last_id else None
        except ValueError as exc:
            raise ProtocolError(BAD_FIELD, f"Last-Event-ID: {exc}") from None
        if last_id and since is None:
            # An id the hub never wrote: recovery cannot hold, and the reader must be told.
            since = Position("", 0)
        node = self.node
        client = stream_client(request, user)
        recover = {channel: since} if since is not None else None
        try:
            joining = await node.prepare_join(client, [channel], recover=recover)
        except BrokerUnavailable as exc:
            raise ProtocolError(UNAVAILABLE, f"{exc}; retry later") from None
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                # nginx buffers responses unless told not to.
                "X-Accel-Buffering": "no",
                **headers,
            }
        )
        position, recovered = joining.positions.get(channel, (None, None))
        preamble = sse_preamble(
            channel,
            position,
            recovered,
            random.randint(*RETRY_MS),
            resume_at=since if recovered else None,
        )
        self.clients.add(client)
        node.users.connected(client, SSE)
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handlers.add(finished)
        self.num_streams_total += 1
        try:
            try:
                await open_body(request, response, preamble)
            except BaseException:
                joining.abort()
                raise
            joining.commit(None)  # the replay, before any live message
            await self._hold(client, grant.exp if grant is not None else None)
            if client.is_open:
                await response.write_eof()
        except (ConnectionError, BrokerUnavailable) as exc:
            logger.debug("an SSE stream of %s ended: %s", channel, exc)
        finally:
            self.clients.discard(client)
            node.users.disconnected(client)
            self._handlers.discard(finished)
            finished.set_result(None)
            node.leave_all(client)
        return response

    async def _hooked_grant(self, request: web.Request, channel: str) -> Grant | None:
        """The grant of a valid JWT, else the connect hook's (transport ``sse``); then the
        subscribe hook for a channel whose namespace asks. A refusal raises AuthError (401)
        or ProtocolError (403); a failed hook, ProtocolError ``unavailable`` (503)."""
        hooks = self.hooks
        assert hooks is not None
        grant: Grant | None = None
        try:
            await _prepare(self.authenticator, request)
            grant = client_grant(self.authenticator, request)
        except AuthError:
            if not hooks.has("connect"):
                raise
        try:
            if grant is None and hooks.has("connect"):
                hooked = await hooks.connect(
                    connect_request(
                        transport="sse",
                        target=request.path_qs,
                        headers=request.headers.items(),
                        forward=self.forwarded_headers,
                        subprotocol=None,
                        remote_addr=request.remote,
                    )
                )
                grant = hooked.grant()
            if self.node.options_for(channel).proxy_subscribe:
                await hooks.subscribe(
                    {"user": grant.sub if grant is not None else None, "channel": channel}
                )
            elif grant is not None and not grant.can_subscribe(channel):
                raise ProtocolError(FORBIDDEN, f"the token may not subscribe to {channel}")
        except HookRefused as exc:
            if exc.hook == "connect" and exc.code in UNAUTHORIZED_CODES:
                raise AuthError(f"the backend refused: {exc}") from None
            raise ProtocolError(FORBIDDEN, f"the backend refused: {exc}") from None
        except HookUnavailable as exc:
            raise ProtocolError(
                UNAVAILABLE, f"the backend is unavailable ({exc.cause}); retry later"
            ) from None
        return grant

    async def _hold(self, client: SseClient, exp: float | None) -> None:
        """Keep the stream open until it ends, with a comment whenever it was idle; at the
        token's ``exp``, end it with an ``expired`` event (a WebSocket gets 4001)."""
        loop = asyncio.get_running_loop()
        # exp is wall-clock time; the loop's clock is monotonic.
        deadline = None if exp is None else loop.time() + (exp - time.time())
        while not client.ended.done():
            wait_s = self.keepalive_s
            if deadline is not None:
                if deadline <= loop.time():
                    client.send_batch(EXPIRED)
                    return
                wait_s = min(wait_s, deadline - loop.time())
            try:
                await asyncio.wait_for(asyncio.shield(client.ended), wait_s)
            except TimeoutError:
                if deadline is not None and deadline <= loop.time():
                    continue
                buffered = client.send_batch(KEEPALIVE)
                if buffered < 0:
                    return
                if buffered > self.max_buffered_bytes:
                    client.disconnect(0, "slow consumer")

    async def close(self) -> None:
        """End every stream cleanly, and wait (bounded) for their handlers to finish."""
        self.is_closing = True
        for client in list(self.clients):
            client.end("shutdown")
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=CLOSE_TIMEOUT_S)
