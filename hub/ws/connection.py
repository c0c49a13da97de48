"""The server's WebSocket connection class: websockets' own, trimmed for memory and CPU."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from hub.core.errors import CloseCode
from hub.core.protocol import BINARY, TEXT

__all__ = ["HubConnection", "MessageCallback"]

_DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
# Shared by every listening connection: a deque with maxlen 0 can never hold anything.
_NOTHING_QUEUED: collections.deque[Frame] = collections.deque(maxlen=0)

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
    _is_released = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # An empty deque costs 760 bytes; a list serves websockets' append/remove/iterate use.
        self.drain_waiters = []  # type: ignore[assignment]

    def release_handshake(self) -> None:
        """Drop the handshake's headers (about 3 KiB), which nothing reads afterwards."""
        # The sans-I/O parser's generator frame keeps the request alive, so empty it in place.
        for message in (self.request, self.response):
            if message is not None:
                message.headers.clear()
        self.request = None
        self.response = None
        self._is_released = True

    def listen(self, on_message: MessageCallback) -> None:
        """Hand every inbound message to ``on_message(payload, kind)`` from now on."""
        self.release_handshake()
        self.hub_on_message = on_message
        # Frames that arrived between the 101 and now sit in websockets' queue; after them,
        # nothing is queued there again, so the per-connection deque (760 bytes) goes too.
        queued = self.recv_messages.frames.queue
        self.recv_messages.frames.queue = _NOTHING_QUEUED
        while queued:
            self._on_frame(queued.popleft())
        if self._lost is None:
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
            if self._is_released:
                # ServerConnection would take a frame for the handshake's request once the
                # request is dropped; frames go to websockets' base handling instead.
                Connection.process_event(self, event)
            else:
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
                self.close_soon(CloseCode.INVALID_DATA, "invalid UTF-8 in a text frame")
                return
        assert self.hub_on_message is not None
        self.hub_on_message(payload, kind)

    def close_soon(self, code: int, reason: str) -> None:
        """Start the closing handshake without waiting for it."""
        task = asyncio.create_task(self.close(code, reason))
        _closing.add(task)
        task.add_done_callback(_closing.discard)
