"""The WebSocket handler: the handshake's decision (``process_request``), then one coroutine
per connection that joins its channel (raw mode) or runs its hub.v1 session."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import partial
from urllib.parse import parse_qs

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from hub.core.auth import Authenticator, AuthError, Grant, may_subscribe, token_from_request
from hub.core.channels import channel_from_path
from hub.core.errors import BrokerUnavailable, CloseCode, InvalidChannel
from hub.core.hooks import (
    ConnectResult,
    HookRefused,
    HookUnavailable,
    connect_request,
    connect_status,
)
from hub.core.origins import normalize_origin
from hub.core.policy import BUFFER_FULL, PublishPolicy
from hub.core.protocol import MAX_HISTORY_LIMIT, SUBPROTOCOL
from hub.core.ratelimit import TokenBucket
from hub.hooks.proxy import HookProxy
from hub.node import Node
from hub.node.users import RAW, V1
from hub.ws.connection import Handshake, HubConnection, MessageCallback
from hub.ws.expiry import Expiry
from hub.ws.routes import Routes, is_upgrade, text_response
from hub.ws.session import V1Session
from hub.ws.subscribers import RawClient, V1Client

__all__ = ["WebSocketHandler", "select_subprotocol"]

logger = logging.getLogger(__name__)


#: Headers a handshake may carry once at most; a second one is refused with 400.
_SINGLE_HEADERS = ("Upgrade", "Origin", "Authorization", "Host", "Sec-WebSocket-Key")


def select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """hub.v1 when offered; otherwise raw mode (process_request refused other offers)."""
    return Subprotocol(SUBPROTOCOL) if SUBPROTOCOL in offered else None


def _offered_subprotocols(request: Request) -> list[str]:
    return [
        p.strip()
        for value in request.headers.get_all("Sec-WebSocket-Protocol")
        for p in value.split(",")
        if p.strip()
    ]


class WebSocketHandler:
    """websockets' ``process_request`` and connection handler, bound to a node."""

    def __init__(
        self,
        *,
        node: Node,
        routes: Routes,
        # Access control
        authenticator: Authenticator | None = None,
        allowed_origins: frozenset[str] | None = None,
        # Limits
        max_connections: int = 0,
        max_subscriptions: int = 1000,
        publish_rate: float = 0.0,
        publish_burst: int = 0,
        subscribe_rate: float = 0.0,
        subscribe_burst: int = 0,
        # Backend hooks (None: no hook configured, nothing is asked)
        hooks: HookProxy | None = None,
        forwarded_headers: tuple[str, ...] = (),
    ) -> None:
        self.node = node
        self.hooks = hooks
        self.forwarded_headers = forwarded_headers
        self.routes = routes
        self.authenticator = authenticator
        self.allowed_origins = allowed_origins
        self.max_connections = max_connections
        self.max_subscriptions = max_subscriptions
        self.publish_rate = publish_rate
        self.publish_burst = publish_burst
        self.subscribe_rate = subscribe_rate
        self.subscribe_burst = subscribe_burst or 2 * max_subscriptions
        self.num_connections = 0
        self.num_opened = 0
        # Bound once: each raw connection's publisher holds it (a bound method each, else).
        self._publish = node.publish

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        for name in _SINGLE_HEADERS:
            if len(request.headers.get_all(name)) > 1:
                return text_response(400, f"more than one {name} header: send exactly one\n")
        if not is_upgrade(request):
            return self.routes.handle(connection, request)
        # Counted from accept: half-open handshakes (slowloris) take their place in the limit.
        if self.max_connections and HubConnection.num_open - 1 >= self.max_connections:
            return text_response(
                503,
                f"this worker holds its maximum of {self.max_connections} connections "
                "(--max-connections); retry later\n",
            )
        origin = request.headers.get("Origin")
        allowed = self.allowed_origins
        if allowed is not None and origin is not None and normalize_origin(origin) not in allowed:
            return text_response(
                403, f"origin {origin[:100]!r} is not allowed (see --allowed-origins)\n"
            )
        offered = _offered_subprotocols(request)
        channel: str | None = None
        if offered:
            if SUBPROTOCOL not in offered:
                return text_response(
                    400,
                    f"unsupported WebSocket subprotocol {', '.join(offered)[:100]!r}: this "
                    f"server speaks {SUBPROTOCOL!r}, or raw mode when no subprotocol is "
                    "offered\n",
                )
        else:
            try:
                channel = channel_from_path(request.path)
            except InvalidChannel as exc:
                return text_response(400, f"{exc}\n")
        admitted = await self._admit(connection, request, channel, bool(offered))
        if admitted is None or isinstance(admitted, Response):
            return admitted  # refused, or the backend is down (closed with 1013 once open)
        grant, hooked = admitted
        hooks = self.hooks
        if channel is not None:
            user = grant.sub if grant is not None else None
            if not may_subscribe(None, user, channel):  # a personal channel: its user alone
                return text_response(403, f"the channel {channel!r} is another user's\n")
            if (
                grant is not None
                and hooks is not None
                and self.node.options_for(channel).proxy_subscribe
            ):
                try:
                    await hooks.subscribe({"user": user, "channel": channel})
                except HookRefused as exc:
                    return text_response(403, f"the backend refused the channel: {exc}\n")
                except HookUnavailable:
                    assert isinstance(connection, HubConnection)
                    connection.hub_handshake = Handshake(
                        channel, None, unavailable="the backend is unavailable; retry later"
                    )
                    return None
            elif not may_subscribe(grant, user, channel):
                return text_response(
                    403, f"the token may not subscribe to the channel {channel!r}\n"
                )
        last = 0
        if channel is not None and "last=" in request.path:
            last_or_refusal = self._last(channel, request.path)
            if isinstance(last_or_refusal, Response):
                return last_or_refusal
            last = last_or_refusal
        assert isinstance(connection, HubConnection)
        connection.hub_handshake = Handshake(channel, grant, last, hooked)
        if channel is not None:
            # Subscribed before the 101 goes out: a client whose connection is open hears its
            # channel from the first message on.
            await self.node.prepare(channel)
        return None

    async def _admit(
        self, connection: ServerConnection, request: Request, channel: str | None, offered: bool
    ) -> tuple[Grant | None, ConnectResult | None] | Response | None:
        """Who the connection is: a valid JWT's grant, else the connect hook's; a Response
        refuses it; None when the backend is down (the handshake then opens and closes 1013).
        """
        grant: Grant | None = None
        hooked: ConnectResult | None = None
        hooks = self.hooks
        connect_hook = hooks is not None and hooks.has("connect")
        if self.authenticator is not None or connect_hook:
            query = request.path.partition("?")[2]
            token = token_from_request(request.headers.get("Authorization"), query)
            refusal: str | None = None
            if token is None:
                refusal = (
                    "a token is required: send 'Authorization: Bearer <JWT>' or "
                    "?token=<JWT> in the URL"
                )
            elif self.authenticator is not None:
                try:
                    await self.authenticator.prepare(token)
                    grant = self.authenticator.verify(token)
                except AuthError as exc:
                    refusal = str(exc)
            else:
                refusal = "this hub verifies no JWTs"
            if grant is None and connect_hook:
                # No valid JWT: the backend decides (a cookie, a session, ...).
                assert hooks is not None
                try:
                    hooked = await hooks.connect(
                        connect_request(
                            transport="ws",
                            target=request.path,
                            headers=request.headers.raw_items(),
                            forward=self.forwarded_headers,
                            subprotocol=SUBPROTOCOL if offered else None,
                            remote_addr=_remote(connection),
                        )
                    )
                except HookRefused as exc:
                    return text_response(connect_status(exc), f"{exc}\n")
                except HookUnavailable:
                    # Browsers cannot read a handshake's status: open, then close with 1013.
                    assert isinstance(connection, HubConnection)
                    connection.hub_handshake = Handshake(
                        channel, None, unavailable="the backend is unavailable; retry later"
                    )
                    return None
                grant = hooked.grant()
            elif grant is None:
                return text_response(401, f"{refusal}\n")
        return grant, hooked

    def _last(self, channel: str, path: str) -> int | Response:
        """The ``?last=N`` of a raw URL: how many past messages to send before live ones."""
        values = parse_qs(path.partition("?")[2]).get("last", [])
        try:
            last = int(values[-1])
        except (IndexError, ValueError):
            last = -1
        if not 0 <= last <= MAX_HISTORY_LIMIT:
            return text_response(400, f"?last must be an integer from 0 to {MAX_HISTORY_LIMIT}\n")
        if last and not self.node.options_for(channel).has_history:
            return text_response(
                400,
                f"?last needs history, and the channel {channel!r} keeps none (see "
                "history_size in the config file's [[namespaces]], or --history-size)\n",
            )
        return last

    async def __call__(self, ws: ServerConnection) -> None:
        assert isinstance(ws, HubConnection) and ws.hub_handshake is not None
        handshake = ws.hub_handshake
        if handshake.unavailable is not None:
            ws.close_soon(CloseCode.TRY_AGAIN_LATER, handshake.unavailable)
            await ws.wait_closed()
            return
        channel = handshake.channel
        node = self.node
        user = handshake.grant.sub if handshake.grant is not None else None
        client: RawClient = RawClient(ws, user) if channel is not None else V1Client(ws, user)
        self.num_connections += 1
        self.num_opened += 1
        node.users.connected(client, RAW if channel is not None else V1)
        grant = handshake.grant
        refresh = None
        if handshake.hooked is not None and self.hooks is not None and self.hooks.has("refresh"):
            refresh = partial(self._refresh, self.hooks, user, "ws")
        expiry: Expiry | None = None
        if grant is not None:  # auth off: no expiry, and no object for one
            expiry = Expiry(client, refresh)
            expiry.set(grant.exp)
        try:
            if channel is None:
                assert isinstance(client, V1Client)
                session = V1Session(
                    ws=ws,
                    client=client,
                    node=node,
                    grant=grant,
                    policy=self._policy(grant),
                    max_subscriptions=self.max_subscriptions,
                    subscribe_bucket=self._subscribe_bucket(),
                    hooks=self.hooks,
                    authenticator=self.authenticator,
                    make_policy=self._policy,
                    on_grant=expiry.set_from if expiry is not None else None,
                )
                session.start(handshake.hooked)
                # This frame lives as long as the connection: it keeps nothing it no longer
                # needs.
                del handshake
                try:
                    await ws.closed()
                finally:
                    await session.finish()  # before the subscriptions are dropped
                return
            # The channel was subscribed during the handshake, so joining does not wait for
            # a SUBSCRIBE; with ?last=N it reads the backlog, written before anything live.
            try:
                joining = await node.prepare_join(
                    client, [channel], last=handshake.last, positioned=False
                )
            except BrokerUnavailable:
                ws.close_soon(CloseCode.TRY_AGAIN_LATER, "history unavailable; retry later")
                await ws.wait_closed()
                return
            joining.commit(None)
            ws.listen(self._raw_publisher(ws, channel, grant))
            # This frame lives as long as the connection: it keeps nothing it no longer needs.
            del joining, handshake
            await ws.closed()
        finally:
            if expiry is not None:
                expiry.cancel()
            self.num_connections -= 1
            node.users.disconnected(client)
            node.leave_all(client)

    def _subscribe_bucket(self) -> TokenBucket | None:
        """A hub.v1 connection's bound on subscribe churn (a channel per token), or None."""
        if not self.subscribe_rate:
            return None
        return TokenBucket(self.subscribe_rate, self.subscribe_burst, time.monotonic())

    @staticmethod
    async def _refresh(hooks: HookProxy, user: str | None, transport: str, exp: float) -> float:
        """The refresh hook's new expiry for a hook-connected connection."""
        return await hooks.refresh({"user": user, "expire_at": exp, "transport": transport})

    def _policy(self, grant: Grant | None) -> PublishPolicy:
        if grant is None and not self.publish_rate:
            return _UNLIMITED  # nothing to hold per connection
        return PublishPolicy.create(
            grant, rate=self.publish_rate, burst=self.publish_burst, now=time.monotonic()
        )

    def _raw_publisher(
        self, ws: HubConnection, channel: str, grant: Grant | None
    ) -> MessageCallback:
        """The callback that publishes a raw client's frames, checked only when it must be.

        Most connections may publish freely: they keep no policy object at all (memory per
        idle connection is what a hub holds tens of thousands of).
        """
        node = self.node
        publish = self._publish
        if self.hooks is not None and node.options_for(channel).proxy_publish:

            def refused(payload: bytes, kind: int) -> None:
                ws.listen(_ignore)
                ws.close_soon(
                    CloseCode.POLICY_VIOLATION,
                    "publishes here go through the backend's hook: publish with hub.v1",
                )

            return refused
        if not self.publish_rate and (grant is None or grant.can_publish(channel)):
            return partial(publish, channel)  # no Python frame of ours per message
        policy = self._policy(grant)

        def checked(payload: bytes, kind: int) -> None:
            refusal = node.publish_from(policy, channel, payload, kind)
            if refusal is not None and refusal is not BUFFER_FULL:
                ws.listen(_ignore)  # nothing more from this client is published
                ws.close_soon(CloseCode.POLICY_VIOLATION, refusal.reason)

        return checked


#: The policy of every connection without a token or a rate limit: it may publish anywhere.
_UNLIMITED = PublishPolicy()


def _ignore(payload: bytes, kind: int) -> None:
    pass


def _remote(connection: ServerConnection) -> str | None:
    try:
        address = connection.remote_address
    except Exception:  # a transport already gone
        return None
    return str(address[0]) if address else None
