"""The WebSocket side: the connection handler and the subscriber object for each client."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from hub.core.auth import Authenticator, AuthError, Grant, token_from_request
from hub.core.channels import channel_from_path
from hub.core.errors import CloseCode, InvalidChannel
from hub.core.fanout import Encoder
from hub.core.protocol import BINARY, SUBPROTOCOL, Message, raw_frames, v1_frames, v1_messages
from hub.core.ratelimit import TokenBucket
from hub.node import Node
from hub.ws.connection import HubConnection, MessageCallback
from hub.ws.routes import Routes, is_upgrade, text_response
from hub.ws.session import V1Session

__all__ = [
    "ENCODERS",
    "FORMAT_RAW",
    "FORMAT_RAW_COMPRESSED",
    "FORMAT_V1",
    "FORMAT_V1_COMPRESSED",
    "RawClient",
    "V1Client",
    "WebSocketHandler",
    "select_subprotocol",
]

logger = logging.getLogger(__name__)

OPEN = State.OPEN
#: A slow consumer must drain what is already queued before it can read the close frame, so
#: it gets longer than the shutdown's close timeout.
SLOW_CLOSE_TIMEOUT_S = 10.0

# Wire formats, as indices into ENCODERS (see fanout.deliver).
FORMAT_RAW = 0
FORMAT_RAW_COMPRESSED = 1
FORMAT_V1 = 2
FORMAT_V1_COMPRESSED = 3


def _no_frames(channel: str, messages: list[Message]) -> bytes:
    # Compressed connections encode per connection (deflate context), in send_batch.
    return b""


def _raw(channel: str, messages: list[Message]) -> bytes:
    return raw_frames(messages)


ENCODERS: tuple[Encoder, ...] = (_raw, _no_frames, v1_frames, _no_frames)


class RawClient:
    """A raw-mode connection: one channel, frames written straight to its transport."""

    __slots__ = ("channels", "format", "transport", "ws")

    def __init__(self, ws: HubConnection) -> None:
        self.ws = ws
        self.transport: Any = ws.transport
        self.format = FORMAT_RAW_COMPRESSED if ws.protocol.extensions else FORMAT_RAW
        self.channels: set[str] = set()

    def send_batch(self, data: bytes, channel: str, messages: list[Message]) -> int:
        ws = self.ws
        if ws.protocol.state is not OPEN:
            return -1
        if data:
            self.transport.write(data)
        else:
            self._send_compressed(channel, messages)
        size: int = self.transport.get_write_buffer_size()
        return size

    def _send_compressed(self, channel: str, messages: list[Message]) -> None:
        """Compressed connections encode per connection: each has its own deflate context."""
        protocol = self.ws.protocol
        for m in messages:
            if m.kind == BINARY:
                protocol.send_binary(m.payload)
            else:
                protocol.send_text(m.payload)
        self.ws.send_data()

    def disconnect(self, code: int, reason: str) -> None:
        if code == CloseCode.SLOW_CONSUMER:
            self.ws.close_timeout = SLOW_CLOSE_TIMEOUT_S
        self.ws.close_soon(code, reason)


class V1Client(RawClient):
    """A hub.v1 connection: many channels, deliveries as JSON text frames."""

    __slots__ = ()

    def __init__(self, ws: HubConnection) -> None:
        super().__init__(ws)
        self.format = FORMAT_V1_COMPRESSED if ws.protocol.extensions else FORMAT_V1

    def _send_compressed(self, channel: str, messages: list[Message]) -> None:
        protocol = self.ws.protocol
        for payload in v1_messages(channel, messages):
            protocol.send_text(payload)
        self.ws.send_data()


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


class _Handshake:
    """What process_request decided about a connection, for the handler."""

    __slots__ = ("can_publish", "channel", "grant")

    def __init__(self, channel: str | None, grant: Grant | None, can_publish: bool) -> None:
        self.channel = channel  # None: hub.v1
        self.grant = grant
        self.can_publish = can_publish


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
    ) -> None:
        self.node = node
        self.routes = routes
        self.authenticator = authenticator
        self.allowed_origins = allowed_origins
        self.max_connections = max_connections
        self.max_subscriptions = max_subscriptions
        self.publish_rate = publish_rate
        self.publish_burst = publish_burst
        self.num_connections = 0
        self.num_opened = 0

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        if not is_upgrade(request):
            return self.routes.handle(connection, request)
        if self.max_connections and self.num_connections >= self.max_connections:
            return text_response(
                503,
                f"this worker holds its maximum of {self.max_connections} connections "
                "(--max-connections); retry later\n",
            )
        origin = request.headers.get("Origin")
        allowed = self.allowed_origins
        if allowed is not None and origin is not None and origin.rstrip("/") not in allowed:
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
        grant: Grant | None = None
        can_publish = True
        if self.authenticator is not None:
            query = request.path.partition("?")[2]
            token = token_from_request(request.headers.get("Authorization"), query)
            if token is None:
                return text_response(
                    401,
                    "a token is required: send 'Authorization: Bearer <JWT>' or "
                    "?token=<JWT> in the URL\n",
                )
            try:
                grant = self.authenticator.verify(token)
            except AuthError as exc:
                return text_response(401, f"{exc}\n")
            if channel is not None:
                if not grant.can_subscribe(channel):
                    return text_response(
                        403, f"the token may not subscribe to the channel {channel!r}\n"
                    )
                can_publish = grant.can_publish(channel)
        connection.hub_handshake = _Handshake(channel, grant, can_publish)  # type: ignore[attr-defined]
        if channel is not None:
            # Subscribed before the 101 goes out: a client whose connection is open hears its
            # channel from the first message on.
            await self.node.prepare(channel)
        return None

    async def __call__(self, ws: ServerConnection) -> None:
        assert isinstance(ws, HubConnection)
        handshake: _Handshake = ws.hub_handshake  # type: ignore[attr-defined]
        channel = handshake.channel
        node = self.node
        client = RawClient(ws) if channel is not None else V1Client(ws)
        self.num_connections += 1
        self.num_opened += 1
        loop = asyncio.get_running_loop()
        expiry: asyncio.TimerHandle | None = None
        grant = handshake.grant
        if grant is not None and grant.exp is not None:
            # One timer per connection at the token's expiry; nothing polls.
            expiry = loop.call_later(
                max(0.0, grant.exp - time.time()),
                client.disconnect,
                CloseCode.TOKEN_EXPIRED,
                "token expired",
            )
        bucket = (
            TokenBucket(self.publish_rate, self.publish_burst, loop.time())
            if self.publish_rate
            else None
        )
        try:
            if channel is None:
                ws.release_handshake()
                session = V1Session(
                    ws=ws,
                    client=client,
                    node=node,
                    grant=grant,
                    bucket=bucket,
                    max_subscriptions=self.max_subscriptions,
                )
                await session.run()
                return
            # The channel was subscribed during the handshake, so joining does not wait.
            await node.join(channel, client)
            ws.listen(self._raw_publisher(ws, channel, handshake, bucket))
            await ws.closed()
        finally:
            if expiry is not None:
                expiry.cancel()
            self.num_connections -= 1
            node.leave_all(client)

    def _raw_publisher(
        self,
        ws: HubConnection,
        channel: str,
        handshake: _Handshake,
        bucket: TokenBucket | None,
    ) -> MessageCallback:
        """The callback that publishes a raw client's frames, checked only when it must be."""
        publish = self.node.publish
        if bucket is None and handshake.can_publish:
            return lambda payload, kind: publish(channel, payload, kind)
        loop = asyncio.get_running_loop()

        def checked(payload: bytes, kind: int) -> None:
            reason = self._refuse_raw(handshake, bucket, loop.time())
            if reason is None:
                publish(channel, payload, kind)
            else:
                ws.listen(_ignore)  # nothing more from this client is published
                ws.close_soon(CloseCode.POLICY_VIOLATION, reason)

        return checked

    def _refuse_raw(
        self, handshake: _Handshake, bucket: TokenBucket | None, now: float
    ) -> str | None:
        """Why a raw client's frame is refused (it is then closed with 1008), or None."""
        if not handshake.can_publish:
            return "this token may not publish to the channel"
        if bucket is not None and not bucket.allow(now):
            self.node.num_rate_limited += 1
            return "publish rate limit exceeded"
        return None


def _ignore(payload: bytes, kind: int) -> None:
    pass
