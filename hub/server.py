"""The WebSocket side: the connection handler and the subscriber object for each client."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from hub.channels import channel_from_path
from hub.errors import InvalidChannel
from hub.fanout import Encoder
from hub.http import Routes, is_upgrade, text_response
from hub.node import Node
from hub.protocol import BINARY, TEXT, Message, raw_frames

__all__ = ["ENCODERS", "FORMAT_RAW", "FORMAT_RAW_COMPRESSED", "WebSocketHandler"]

logger = logging.getLogger(__name__)

OPEN = State.OPEN
SLOW_CLOSE_TIMEOUT_S = 10.0

# Wire formats, as indices into ENCODERS (see fanout.deliver).
FORMAT_RAW = 0
FORMAT_RAW_COMPRESSED = 1


def _no_frames(channel: str, messages: list[Message]) -> bytes:
    # Compressed connections encode per connection (deflate context), in send_batch.
    return b""


def _raw(channel: str, messages: list[Message]) -> bytes:
    return raw_frames(messages)


ENCODERS: tuple[Encoder, ...] = (_raw, _no_frames)

# Closing tasks run detached; keep references so they are not garbage-collected mid-close.
_closing: set[asyncio.Task[None]] = set()


class RawClient:
    """A raw-mode connection: one channel, frames written straight to its transport."""

    __slots__ = ("channels", "format", "transport", "ws")

    def __init__(self, ws: ServerConnection) -> None:
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
            protocol = ws.protocol
            for m in messages:
                if m.kind == BINARY:
                    protocol.send_binary(m.payload)
                else:
                    protocol.send_text(m.payload)
            ws.send_data()
        size: int = self.transport.get_write_buffer_size()
        return size

    def disconnect(self, code: int, reason: str) -> None:
        # A slow consumer must drain what is already queued before it can read the close
        # frame, so it gets longer than the shutdown's close timeout.
        self.ws.close_timeout = SLOW_CLOSE_TIMEOUT_S
        task = asyncio.create_task(self.ws.close(code, reason))
        _closing.add(task)
        task.add_done_callback(_closing.discard)


class WebSocketHandler:
    """websockets' ``process_request`` and connection handler, bound to a node."""

    def __init__(self, *, node: Node, routes: Routes) -> None:
        self.node = node
        self.routes = routes
        self.num_connections = 0
        self.num_opened = 0

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        if not is_upgrade(request):
            return self.routes.handle(connection, request)
        try:
            channel = channel_from_path(request.path)
        except InvalidChannel as exc:
            return text_response(400, f"{exc}\n")
        connection.hub_channel = channel  # type: ignore[attr-defined]
        # Subscribed before the 101 goes out: a client whose connection is open hears its
        # channel from the first message on.
        await self.node.prepare(channel)
        return None

    async def __call__(self, ws: ServerConnection) -> None:
        channel: str = ws.hub_channel  # type: ignore[attr-defined]
        node = self.node
        client = RawClient(ws)
        self.num_connections += 1
        self.num_opened += 1
        try:
            await node.join(channel, client)
            publish = node.publish
            async for message in ws:
                if type(message) is str:
                    publish(channel, message.encode(), TEXT)
                else:
                    publish(channel, message, BINARY)  # type: ignore[arg-type]
        except ConnectionClosed:
            pass
        finally:
            self.num_connections -= 1
            node.leave_all(client)
