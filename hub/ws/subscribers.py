"""The fan-out's view of a WebSocket connection: one subscriber object per client (the
node's ``Member``)."""

from __future__ import annotations

import asyncio

from websockets.protocol import State

from hub.core.envelope import BINARY, GAP, Envelope
from hub.core.errors import CloseCode
from hub.core.formats import ENCODERS, PER_CONNECTION, RAW, V1
from hub.core.frames import OP_TEXT, encode_frame, v1_messages
from hub.ws.connection import SLOW_CLOSE_TIMEOUT_S, HubConnection

__all__ = ["RawClient", "V1Client"]

OPEN = State.OPEN


class RawClient:
    """A raw-mode connection: one channel, frames written straight to its transport."""

    __slots__ = ("channels", "format", "number", "protocol", "transport", "user", "ws")

    def __init__(self, ws: HubConnection, user: str | None = None) -> None:
        self.ws = ws
        self.number = 0  # numbered by the node when an id is first needed (presence)
        self.user = user
        self.protocol = ws.protocol
        self.transport: asyncio.WriteTransport = ws.transport
        self.format = PER_CONNECTION if ws.is_compressed else RAW
        self.channels: set[str] = set()

    def send_batch(self, data: bytes) -> int:
        if self.protocol.state is not OPEN:
            return -1
        self.transport.write(data)
        size: int = self.transport.get_write_buffer_size()
        return size

    def send_messages(self, channel: str, messages: list[Envelope]) -> int:
        """Compressed connections encode per connection: each has its own deflate context."""
        if self.protocol.state is not OPEN:
            return -1
        for m in messages:
            if m.kind == BINARY:
                self.protocol.send_binary(m.payload)
            elif m.kind < GAP:  # raw mode has no frame for a gap or a presence event
                self.protocol.send_text(m.payload)
        self.ws.flush()
        size: int = self.transport.get_write_buffer_size()
        return size

    def write_now(self, reply: bytes | None, batches: list[tuple[str, list[Envelope]]]) -> int:
        """Write a reply (a text frame; hub.v1 only) and then replayed messages, at once;
        return the bytes now unsent, or -1 when the connection is closed.

        Nothing awaits in between, so no live delivery can slip ahead of them.
        """
        if self.protocol.state is not OPEN:
            return -1
        if self.format == PER_CONNECTION:
            if reply is not None:
                self.protocol.send_text(reply)
                self.ws.flush()
            for channel, messages in batches:
                self.send_messages(channel, messages)
        else:
            encode = ENCODERS[self.format]
            parts = [] if reply is None else [encode_frame(OP_TEXT, reply)]
            parts += [encode(channel, messages) for channel, messages in batches if messages]
            self.transport.write(b"".join(parts))
        size: int = self.transport.get_write_buffer_size()
        return size

    def disconnect(self, code: int, reason: str) -> None:
        if code == CloseCode.SLOW_CONSUMER:
            self.ws.close_timeout = SLOW_CLOSE_TIMEOUT_S
        self.ws.close_soon(code, reason)


class V1Client(RawClient):
    """A hub.v1 connection: many channels, deliveries as JSON text frames."""

    __slots__ = ()

    def __init__(self, ws: HubConnection, user: str | None = None) -> None:
        super().__init__(ws, user)
        self.format = PER_CONNECTION if ws.is_compressed else V1

    def send_messages(self, channel: str, messages: list[Envelope]) -> int:
        if self.protocol.state is not OPEN:
            return -1
        for payload in v1_messages(channel, messages):
            self.protocol.send_text(payload)
        self.ws.flush()
        size: int = self.transport.get_write_buffer_size()
        return size
