"""A hub.v1 connection's request loop: JSON control frames in, acks and errors out.

Deliveries do not pass through here: the fan-out writes them straight to the transport
(``hub.ws.subscribers.V1Client``). This loop runs once per inbound client frame.
"""

from __future__ import annotations

import logging

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from hub.core.auth import Grant, may_subscribe
from hub.core.errors import BrokerUnavailable, ProtocolError
from hub.core.frames import history_frame
from hub.core.jsontext import dump_json
from hub.core.policy import PublishPolicy
from hub.core.protocol import (
    FORBIDDEN,
    TOO_LARGE,
    TOO_MANY_SUBSCRIPTIONS,
    UNAVAILABLE,
    Request,
    ack_frame,
    decode_binary_publish,
    decode_request,
    error_frame,
    positions_field,
)
from hub.node import Node
from hub.ws.subscribers import V1Client

__all__ = ["V1Session"]

logger = logging.getLogger(__name__)


class V1Session:
    """Serves one hub.v1 connection's requests until it closes."""

    def __init__(
        self,
        *,
        ws: ServerConnection,
        client: V1Client,
        node: Node,
        grant: Grant | None,
        policy: PublishPolicy,
        max_subscriptions: int,
    ) -> None:
        self.ws = ws
        self.client = client
        self.node = node
        self.grant = grant
        self.policy = policy
        self.max_subscriptions = max_subscriptions

    async def run(self) -> None:
        """Serve requests until the connection ends; an ordinary end (a reset, the client's
        close, the token's expiry) is no error and logs no traceback."""
        try:
            await self._serve()
        except ConnectionClosed as exc:
            logger.debug("hub.v1 connection ended: %s", exc)

    async def _serve(self) -> None:
        ws = self.ws
        async for frame in ws:
            reply: str | None = None
            try:
                if isinstance(frame, str):
                    reply = await self.handle(decode_request(frame))
                else:
                    # Binary frames are fire-and-forget: no ack, but errors are answered.
                    self.publish(decode_binary_publish(frame))
            except ProtocolError as exc:
                reply = error_frame(exc.code, exc.message, exc.request_id)  # type: ignore[arg-type]
            if reply is not None:
                await ws.send(reply)

    async def handle(self, request: Request) -> str | None:
        """Carry out one request; return its ack, or raise ProtocolError."""
        op = request.op
        if op == "publish":
            self.publish(request)
            return ack_frame(op, request.id)
        if op == "subscribe":
            await self.subscribe(request)
            return None  # subscribe writes its ack itself, before any replay
        if op == "history":
            return await self.history(request)
        if op == "presence":
            return await self.presence(request)
        if op == "unsubscribe":
            for channel in request.channels:
                self.node.leave(channel, self.client)
            return ack_frame(op, request.id, channels=list(request.channels))
        return ack_frame(op, request.id)

    async def subscribe(self, request: Request) -> None:
        """Join each channel, then write the ack and, on history channels, the replays."""
        client = self.client
        grant = self.grant
        denied = [c for c in request.channels if not may_subscribe(grant, client.user, c)]
        if denied:
            raise ProtocolError(
                FORBIDDEN,
                f"this connection may not subscribe to {', '.join(denied[:5])} (its token's "
                "grants; a personal channel name#user is its user's only)",
                request.id,
            )
        new = [c for c in request.channels if c not in client.channels]
        if len(client.channels) + len(new) > self.max_subscriptions:
            raise ProtocolError(
                TOO_MANY_SUBSCRIPTIONS,
                f"this connection has {len(client.channels)} subscriptions and asked for "
                f"{len(new)} more; the limit is {self.max_subscriptions} (--max-subscriptions): "
                "unsubscribe from some first",
                request.id,
            )
        node = self.node
        try:
            joining = await node.prepare_join(client, new, recover=request.recover)
        except BrokerUnavailable as exc:
            raise ProtocolError(
                UNAVAILABLE, f"{exc}; nothing was subscribed: retry later", request.id
            ) from None
        extra: dict[str, object] = {"channels": list(request.channels)}
        positions = positions_field(joining.positions)
        if positions:
            extra["positions"] = positions
        # The ack, then the replays: written by the commit, before any live message.
        joining.commit(ack_frame("subscribe", request.id, **extra).encode())
        if request.join_leave:
            for channel in request.channels:
                node.presence.listen(channel, client)

    async def presence(self, request: Request) -> str:
        channel = request.channel
        if not may_subscribe(self.grant, self.client.user, channel):
            raise ProtocolError(
                FORBIDDEN, f"the token may not see who is subscribed to {channel}", request.id
            )
        try:
            answer = await self.node.presence.read(channel)
        except ProtocolError as exc:
            raise ProtocolError(exc.code, exc.message, request.id) from None
        return dump_json({"type": "presence", "id": request.id, **answer}).decode()

    async def history(self, request: Request) -> str:
        channel = request.channel
        if not may_subscribe(self.grant, self.client.user, channel):
            raise ProtocolError(
                FORBIDDEN, f"the token may not read the history of {channel}", request.id
            )
        try:
            page = await self.node.history.read(channel, request.since, request.limit)
        except ProtocolError as exc:
            raise ProtocolError(exc.code, exc.message, request.id) from None
        answer = history_frame(dump_json(request.id), channel, page)
        if len(answer) > self.node.max_buffered_bytes:
            # Every byte queued for a client counts toward its bound, answers included.
            raise ProtocolError(
                TOO_LARGE,
                f"the answer would be {len(answer)} bytes, more than this connection may have "
                f"queued ({self.node.max_buffered_bytes}, --max-buffered-bytes): ask for fewer "
                "messages with 'limit'",
                request.id,
            )
        return answer.decode()

    def publish(self, request: Request) -> None:
        refusal = self.node.publish_from(
            self.policy, request.channel, request.payload, request.kind
        )
        if refusal is not None:
            raise ProtocolError(refusal.code, refusal.message, request.id)
