"""A hub.v1 connection's request loop: JSON control frames in, acks and errors out.

Deliveries do not pass through here: the fan-out writes them straight to the transport
(``hub.ws.clients.V1Client``). This loop runs once per inbound client frame.
"""

from __future__ import annotations

import logging

from websockets.asyncio.server import ServerConnection

from hub.core.auth import Grant
from hub.core.errors import ProtocolError
from hub.core.policy import PublishPolicy
from hub.core.protocol import (
    FORBIDDEN,
    TOO_MANY_SUBSCRIPTIONS,
    Request,
    ack_frame,
    decode_binary_publish,
    decode_request,
    error_frame,
)
from hub.node import Client, Node

__all__ = ["V1Session"]

logger = logging.getLogger(__name__)


class V1Session:
    """Serves one hub.v1 connection's requests until it closes."""

    def __init__(
        self,
        *,
        ws: ServerConnection,
        client: Client,
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
            channels = await self.subscribe(request)
            return ack_frame(op, request.id, channels=channels)
        if op == "unsubscribe":
            for channel in request.channels:
                self.node.leave(channel, self.client)
            return ack_frame(op, request.id, channels=list(request.channels))
        return ack_frame(op, request.id)

    async def subscribe(self, request: Request) -> list[str]:
        client = self.client
        grant = self.grant
        if grant is not None:
            denied = [c for c in request.channels if not grant.can_subscribe(c)]
            if denied:
                raise ProtocolError(
                    FORBIDDEN,
                    f"the token may not subscribe to {', '.join(denied[:5])}",
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
        for channel in new:
            await self.node.join(channel, client)
        return list(request.channels)

    def publish(self, request: Request) -> None:
        refusal = self.node.publish_from(
            self.policy, request.channel, request.payload, request.kind
        )
        if refusal is not None:
            raise ProtocolError(refusal.code, refusal.message, request.id)
