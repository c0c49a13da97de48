"""The WebSocket side: the connection handler and the subscriber object for each client."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event, State

from hub.channels import channel_from_path
from hub.errors import CloseCode, InvalidChannel
from hub.fanout import Encoder
from hub.http import Routes, is_upgrade, text_response
from hub.node import Node
from hub.protocol import BINARY, TEXT, Message, raw_frames

__all__ = ["ENCODERS", "FORMAT_RAW", "FORMAT_RAW_COMPRESSED", "WebSocketHandler"]

logger = logging.getLogger(__name__)

OPEN = State.OPEN
_DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
# Shared by every listening connection: a deque with maxlen 0 can never hold anything.
_NOTHING_QUEUED: collections.deque[Frame] = collections.deque(maxlen=0)
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


MessageCallback = Callable[[bytes, int], object]


class HubConnection(ServerConnection):
    """websockets' server connection, trimmed for memory and CPU: hub holds tens of thousands
    of mostly idle connections, and reads every inbound message only to publish it.

    After ``listen``, each complete inbound message goes straight from the frame parser to a
    callback, instead of through websockets' message queue and a ``recv()`` coroutine per
    connection: no task switch per message, and text is never decoded to ``str`` and back.
    """

    hub_on_message: MessageCallback | None = None
    _fragments: list[bytes | bytearray | memoryview] | None = None
    _fragments_kind = TEXT
    _lost: asyncio.Future[None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # An empty deque costs 760 bytes; a list serves websockets' append/remove/iterate use.
        self.drain_waiters = []  # type: ignore[assignment]

    def listen(self, on_message: MessageCallback) -> None:
        """Hand every inbound message to ``on_message(payload, kind)`` from now on.

        Also drops the handshake's headers (about 3 KiB), which nothing reads afterwards.
        """
        # The sans-I/O parser's generator frame keeps the request alive, so empty it in place.
        for message in (self.request, self.response):
            if message is not None:
                message.headers.clear()
        self.request = None
        self.response = None
        self.hub_on_message = on_message
        # Frames that arrived between the 101 and now sit in websockets' queue; after them,
        # nothing is queued there again, so the per-connection deque (760 bytes) goes too.
        queued = self.recv_messages.frames.queue
        self.recv_messages.frames.queue = _NOTHING_QUEUED
        while queued:
            self._on_frame(queued.popleft())
        self._lost = self.loop.create_future()

    async def closed(self) -> None:
        """Wait until the connection is closed (without websockets' shielded futures)."""
        assert self._lost is not None
        await self._lost

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def process_event(self, event: Event) -> None:
        if self.hub_on_message is None:
            super().process_event(event)
            return
        assert isinstance(event, Frame)
        if event.opcode in _DATA_OPCODES:
            self._on_frame(event)
        elif event.opcode is Opcode.PONG:
            self.acknowledge_pings(bytes(event.data))

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.CONT:
            if self._fragments is None:
                return  # the protocol layer rejects a stray continuation
            self._fragments.append(frame.data)
            if not frame.fin:
                return
            payload, kind = bytes(b"".join(self._fragments)), self._fragments_kind
            self._fragments = None
        else:
            kind = BINARY if opcode is Opcode.BINARY else TEXT
            if not frame.fin:
                self._fragments, self._fragments_kind = [frame.data], kind
                return
            payload = bytes(frame.data)  # no copy: the parser yields bytes
        if kind == TEXT and not payload.isascii():
            try:
                payload.decode()
            except UnicodeDecodeError:
                self._close_soon(CloseCode.INVALID_DATA, "invalid UTF-8 in a text frame")
                return
        assert self.hub_on_message is not None
        self.hub_on_message(payload, kind)

    def _close_soon(self, code: int, reason: str) -> None:
        task = asyncio.create_task(self.close(code, reason))
        _closing.add(task)
        task.add_done_callback(_closing.discard)


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
        self.ws._close_soon(code, reason)


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
        assert isinstance(ws, HubConnection)
        channel: str = ws.hub_channel  # type: ignore[attr-defined]
        node = self.node
        client = RawClient(ws)
        self.num_connections += 1
        self.num_opened += 1
        publish = node.publish
        try:
            # The channel was subscribed during the handshake, so joining does not wait, and
            # the first message this client sends already comes back to it.
            await node.join(channel, client)
            ws.listen(lambda payload, kind: publish(channel, payload, kind))
            await ws.closed()
        finally:
            self.num_connections -= 1
            node.leave_all(client)
