"""The server's WebSocket connection class: websockets' own, trimmed for memory and CPU.

This is the one module that touches websockets' private internals (``drain_waiters``,
``recv_messages``, ``process_event``, ``pending_pings``, ``acknowledge_pings``,
``send_data``, ``request_rcvd``, ``connection_lost_waiter``, the sans-I/O protocol's
``parser``). ``tests/ws/test_websockets_internals.py`` fails with a clear message when a
websockets release changes any of them, and pyproject.toml pins websockets to the minor
version tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from websockets.asyncio.connection import Connection
from websockets.asyncio.messages import Assembler
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event, Protocol, State
from websockets.streams import StreamReader

from hub.core.auth import Grant
from hub.core.envelope import BINARY, TEXT
from hub.core.errors import CloseCode
from hub.core.hooks import ConnectResult

__all__ = ["PRIVATE_INTERNALS", "Handshake", "HubConnection", "MessageCallback"]

#: SO_LINGER on, 0 s: close() sends an RST and drops what the socket still holds.
_LINGER_RST = struct.pack("ii", 1, 0)

#: websockets' private names this module relies on: (class, attribute).
PRIVATE_INTERNALS: tuple[tuple[str, str], ...] = (
    ("Connection", "drain_waiters"),
    ("Connection", "recv_messages"),
    ("Connection", "process_event"),
    ("Connection", "pending_pings"),
    ("Connection", "acknowledge_pings"),
    ("Connection", "send_data"),
    ("ServerConnection", "process_event"),
    ("ServerConnection", "request_rcvd"),
    ("Connection", "connection_lost_waiter"),
    ("Protocol", "parser"),
)
# And the parser's shape: ServerProtocol.parse waits in ``Protocol.parse`` on
# ``StreamReader.at_eof`` between frames (names too common to search for; the test checks it).

_DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
_AT_EOF = StreamReader.at_eof.__code__
_FRAME_PARSER = Protocol.parse.__code__


class _NoAssembler:
    """Stands for websockets' message assembler once a connection listens: nothing is queued
    there again, so every listening connection shares this one instead of its own (about 370
    bytes: the assembler, its queue, two bound methods; 1.6 KiB with its deque)."""

    __slots__ = ()

    def close(self) -> None:
        pass  # connection_lost's call: there is no recv() to wake


_NO_ASSEMBLER = _NoAssembler()
#: Shared by every connection without permessage-deflate, instead of an empty list each.
_NO_EXTENSIONS: tuple[()] = ()

#: Fragmented messages being received, by connection: (kind, parts so far). They are rare,
#: so they take no attribute of the connection (see HubConnection).
_fragments: dict[HubConnection, tuple[int, list[bytes | bytearray | memoryview]]] = {}

logger = logging.getLogger(__name__)
_last_slow_log = 0.0
#: A slow consumer must drain what is already queued before it can read the close frame, so
#: it gets longer than the shutdown's close timeout.
SLOW_CLOSE_TIMEOUT_S = 10.0

# Closing tasks run detached; keep references so they are not garbage-collected mid-close.
_closing: set[asyncio.Task[None]] = set()


MessageCallback = Callable[[bytes, int], object]


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the handshake decided about a connection, for its handler."""

    #: The raw-mode channel of the URL path; None for hub.v1.
    channel: str | None
    #: The verified token's grant; None when authentication is off.
    grant: Grant | None
    #: Raw mode's ``?last=N``: past messages to send before the live ones.
    last: int = 0
    #: The connect hook's answer, when the connection was let in by it (not by a JWT).
    hooked: ConnectResult | None = None
    #: Why the connect hook could not answer: the connection opens only to close with 1013.
    unavailable: str | None = None


class HubConnection(ServerConnection):
    """websockets' server connection, trimmed for memory and CPU: hub holds tens of thousands
    of mostly idle connections, and reads every inbound message only to publish it.

    After ``listen``, each complete inbound message goes straight from the frame parser to a
    callback, instead of through websockets' message queue and a ``recv()`` coroutine per
    connection: no task switch per message, and text is never decoded to ``str`` and back.
    """

    #: Unsent bytes past which a client is cut off, whatever they are: deliveries, pongs to
    #: its pings, close frames. Set once per process (``WebSocketServer``); 0: no bound.
    max_write_buffer_bytes: ClassVar[int] = 0
    #: Connections of this process from accept to loss, handshakes in flight included.
    num_open: ClassVar[int] = 0
    #: Clients cut off because they read nothing while their pongs (or other frames) piled up.
    num_overflows: ClassVar[int] = 0

    #: Set by the handshake (``WebSocketHandler.process_request``) before the handler runs.
    hub_handshake: Handshake | None
    hub_on_message: MessageCallback | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # CPython 3.11 keeps a class's instance attributes in a compact array (about 250
        # bytes) while their names fit its shared table; each new instance takes a place from
        # that table's spare room, so a name first set after thousands of connections are
        # created gives every connection a dict of its own instead (1,584 bytes). Every name
        # is set here, then: websockets' late ones (connection_made) and hub's two, and hub
        # adds no other instance attribute, ever.
        self.recv_messages = _NO_ASSEMBLER  # type: ignore[assignment]
        self.transport = None  # type: ignore[assignment]
        self.hub_handshake = None
        self.hub_on_message = None
        super().__init__(*args, **kwargs)
        # An empty deque costs 760 bytes; a list serves websockets' append/remove/iterate use.
        self.drain_waiters = []  # type: ignore[assignment]
        # websockets wraps its logger per connection (an adapter, its dict and a weakref proxy:
        # about 230 bytes) to name the connection in log records; hub's log format does not.
        self.logger = self.protocol.logger = _plain_logger(self.protocol.logger)

    @property
    def is_compressed(self) -> bool:
        """Whether permessage-deflate was negotiated: frames are then encoded per connection."""
        return bool(self.protocol.extensions)

    def flush(self) -> None:
        """Write out what the sans-I/O protocol has queued (frames sent through it)."""
        self.send_data()

    def ping_or_abort(self, now: float, timeout_s: float) -> bool:
        """Ping, unless the last ping is unanswered; False (and abort) once it is overdue.

        The ping is registered where websockets looks for it, so that its own pong handling
        (``acknowledge_pings``) completes it.
        """
        pending = self.pending_pings
        if pending:
            oldest = min(sent_at for _, sent_at in pending.values())
            if now - oldest > timeout_s:
                # An RST, not a FIN (SO_LINGER 0): the kernel drops the unsent bytes at once
                # instead of retransmitting them for minutes into a silent peer, and a client
                # that comes back after a partition learns the connection is gone.
                sock = self.transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
                self.transport.abort()
                return False
            return True
        data = os.urandom(4)
        pending[data] = (self.loop.create_future(), now)
        self.protocol.send_ping(data)
        self.send_data()
        return True

    def release_handshake(self) -> None:
        """Drop what only the handshake needed (about 1 KiB): its request and response, the
        sans-I/O parser's handshake frame, the subprotocol selector, the request's future."""
        # The sans-I/O parser's generator frame keeps the request alive, so empty it in place.
        for message in (self.request, self.response):
            if message is not None:
                message.headers.clear()
        self.request = None
        self.response = None
        self.hub_handshake = None
        protocol = self.protocol
        # The selector is websockets' closure per connection, bound to its protocol; without
        # it, the class's method is seen again (a ``del``, not ``__dict__``, which would
        # give the protocol a dict of its own).
        with contextlib.suppress(AttributeError):
            del protocol.select_subprotocol
        # Done since the request came; only the handshake awaited it.
        with contextlib.suppress(AttributeError):
            del self.request_rcvd
        if not protocol.extensions:
            protocol.extensions = _NO_EXTENSIONS  # type: ignore[assignment]
        _restart_parser(protocol)

    def listen(self, on_message: MessageCallback) -> None:
        """Hand every inbound message to ``on_message(payload, kind)`` from now on."""
        if self.hub_on_message is None:
            self.release_handshake()
        self.hub_on_message = on_message
        # Frames that arrived between the 101 and now sit in websockets' queue; after them,
        # nothing is queued there again.
        assembler: object = self.recv_messages
        if isinstance(assembler, Assembler):
            self.recv_messages = _NO_ASSEMBLER  # type: ignore[assignment]
            queued = assembler.frames.queue
            while queued:
                self._on_frame(queued.popleft())

    def closed(self) -> asyncio.Future[None]:
        """What to await until the connection is closed: websockets' own future, unshielded
        (a shield, or a coroutine here, is more objects per waiting connection; see
        connection_lost)."""
        return self.connection_lost_waiter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        HubConnection.num_open += 1

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Every ping answered queues a pong: a client that pings and never reads would grow
        # this buffer without end. The bound that evicts slow consumers covers it too.
        limit = self.max_write_buffer_bytes
        if limit:
            unsent = self.transport.get_write_buffer_size()
            if unsent > limit:
                if self.protocol.state is State.OPEN:
                    self._close_slow(unsent)
                elif unsent > 4 * limit:
                    self.transport.abort()  # it went on while closing: no more waiting

    def _close_slow(self, unsent: int) -> None:
        HubConnection.num_overflows += 1
        global _last_slow_log
        now = time.monotonic()
        if now - _last_slow_log > 10.0:
            _last_slow_log = now
            logger.warning(
                "closing a client that reads nothing of what it is sent, pongs included "
                "(%d bytes unsent; %d so far)",
                unsent,
                HubConnection.num_overflows,
            )
        self.close_timeout = SLOW_CLOSE_TIMEOUT_S
        self.close_soon(CloseCode.SLOW_CONSUMER, "slow consumer")

    def connection_lost(self, exc: Exception | None) -> None:
        HubConnection.num_open -= 1
        if self.connection_lost_waiter.cancelled():
            # A handler cancelled in closed() cancelled the future with it; websockets sets
            # its result next, and other waiters (close()) shield it.
            self.connection_lost_waiter = self.loop.create_future()
        super().connection_lost(exc)
        _fragments.pop(self, None)

    def process_event(self, event: Event) -> None:
        if self.hub_on_message is None:
            if isinstance(event, Frame):
                # Once the request is dropped, ServerConnection would take a frame for it:
                # frames go to websockets' base handling.
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
            pending = _fragments.get(self)
            if pending is None:
                return  # the protocol layer rejects a stray continuation
            kind, parts = pending
            parts.append(frame.data)
            if not frame.fin:
                return
            payload = bytes(b"".join(parts))
            del _fragments[self]
        else:
            kind = BINARY if opcode is Opcode.BINARY else TEXT
            if not frame.fin:
                _fragments[self] = (kind, [frame.data])
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


def _plain_logger(logger: logging.Logger | logging.LoggerAdapter[Any]) -> logging.Logger:
    """The logger under websockets' per-connection adapter."""
    while isinstance(logger, logging.LoggerAdapter):
        logger = logger.logger
    return logger


def _restart_parser(protocol: Protocol) -> None:
    """Swap the server's sans-I/O parser, whose generator frame holds the handshake's request,
    for the base frame parser, when it waits between frames (nothing half-read is lost).

    ServerProtocol.parse parses the request and then ``yield from Protocol.parse``; the two
    generators and the request stay alive as long as the connection does.
    """
    parser = protocol.parser
    frames = getattr(parser, "gi_yieldfrom", None)
    waiting = getattr(frames, "gi_yieldfrom", None)
    if (
        protocol.state is not State.OPEN
        or getattr(frames, "gi_code", None) is not _FRAME_PARSER
        or getattr(waiting, "gi_code", None) is not _AT_EOF
    ):
        return  # mid-frame, closing, or done already: keep the parser it has
    fresh = Protocol.parse(protocol)
    next(fresh)  # runs to the same wait for the next frame's first byte
    protocol.parser = fresh
    parser.close()
