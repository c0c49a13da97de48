"""A lean WebSocket client for the bench: one ``asyncio.Protocol`` object per socket, nothing else.

Why: picows keeps about 10-13 KiB per idle socket (read and write buffers, the upgrade request
and response, a logger adapter...). Here an idle socket is the event loop's transport plus one
``__slots__`` object (:class:`LeanSocket`) whose receive buffer is ``b""``: no task, coroutine,
future, dict or preallocated buffer stays alive once the handshake is done.

What it does (RFC 6455, client side, just what the bench needs):

- The handshake request is built once per (host, path) (:func:`request_prefix`); each connection
  adds its own random ``Sec-WebSocket-Key`` and checks the server's ``Sec-WebSocket-Accept``.
  No extensions, no subprotocols.
- Server frames are parsed incrementally from whatever chunks the transport delivers. A data
  message's payload is never copied: only its first :data:`HEADER_SIZE` bytes (the bench header)
  are read, and the rest is skipped, even when it spans many reads. Fragmented messages
  (continuation frames) count once, when their last frame is in. Text payloads are not checked
  for UTF-8.
- Pings are answered with pongs; a close frame is answered with a close frame, then the socket
  is closed. Client frames are masked with a random 4-byte key.

:class:`LeanSocket` counts data messages and bytes into shared :class:`Counters` and calls
:meth:`LeanSocket.on_message` with the bench header's fields; subclasses decide what they mean.
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import cast

from hub.bench import header as hdr
from hub.bench.wire import (
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    MAX_RESPONSE_BYTES,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    HandshakeError,
    check_response,
    encode_frame,
    random_key,
)

__all__ = ["Counters", "LeanSocket"]

HEADER_SIZE = hdr.HEADER_SIZE
MAGIC = hdr.MAGIC
_unpack_header = hdr.HEADER.unpack_from

# What LeanSocket._other_frame returns instead of where the next frame starts
_WAIT = -1  # the frame is not all here yet
_STOP = -2  # stop parsing

# Socket states
HANDSHAKE = 0
OPEN = 1
CLOSED = 2


class Counters:
    """One process's totals, written by every socket."""

    __slots__ = ("bytes", "disconnected", "foreign", "frames", "other_frames", "run_id", "sent")

    def __init__(self, run_id: int = 0) -> None:
        self.run_id = run_id  # bench messages of another run are counted in ``foreign`` only
        self.foreign = 0
        self.frames = 0  # data messages received (a fragmented message counts once)
        self.bytes = 0  # their payload bytes
        self.other_frames = 0  # data messages without a bench header
        self.sent = 0
        self.disconnected = 0  # sockets closed by the server or the network, not by us


class LeanSocket(asyncio.Protocol):
    """One client socket: the handshake, then the frame parser.

    While idle it holds: the transport (``transport``, set once the handshake is done), the
    shared counters, its state, and an empty receive buffer. ``_handshake`` (transport, key and
    the connector's future) exists only while the upgrade is in flight.
    """

    __slots__ = (
        "_buf",
        "_fin",
        "_handshake",
        "_head",
        "_msg_len",
        "_skip",
        "counters",
        "state",
        "transport",
        "we_closed",
    )

    #: How much of a fragmented message is kept: the header (adapters keep whole messages).
    keep = HEADER_SIZE

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.transport: asyncio.Transport | None = None
        self.state = HANDSHAKE
        self.we_closed = False
        self._handshake: tuple[asyncio.Transport | None, bytes, asyncio.Future[None]] | None = None
        self._buf = b""  # unparsed bytes: a partial response, frame header or control frame
        self._skip = 0  # payload bytes of the current data frame still to come
        self._head: bytes | None = None  # the current message's first bytes; None: between
        self._msg_len = 0  # the current message's payload bytes so far
        self._fin = False  # the current data frame is its message's last

    # Connecting

    def start(self, prefix: bytes, waiter: asyncio.Future[None]) -> None:
        """Arm the handshake: ``prefix`` from :func:`request_prefix`; ``waiter`` gets the end."""
        key = base64.b64encode(os.urandom(16))
        self._handshake = (None, prefix + key + b"\r\n\r\n", waiter)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: they only quack like one.
        transport = cast(asyncio.Transport, transport)
        handshake = self._handshake
        if handshake is None or self.we_closed:
            transport.abort()
            return
        _, request, waiter = handshake
        self._handshake = (transport, request, waiter)
        transport.write(request)

    def _handshake_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_RESPONSE_BYTES:
                self._handshake_failed(HandshakeError("response headers too long"))
            else:
                self._buf = buf
            return
        self._buf = b""
        assert self._handshake is not None
        transport, request, waiter = self._handshake
        error = check_response(buf[:end], request)
        if error is not None:
            self._handshake_failed(HandshakeError(error))
            return
        self._handshake = None
        self.transport = transport
        self.state = OPEN
        self.on_open()
        if not waiter.done():
            waiter.set_result(None)
        rest = buf[end + 4 :]
        if rest:
            self.feed(rest)

    def _handshake_failed(self, error: BaseException) -> None:
        handshake = self._handshake
        self._handshake = None
        self._buf = b""
        self.state = CLOSED
        if handshake is None:
            return
        transport, _, waiter = handshake
        if not waiter.done():
            waiter.set_exception(error)
        if transport is not None:
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state == HANDSHAKE:
            self._handshake_failed(exc or ConnectionResetError("closed during the handshake"))
        else:
            self._drop()

    def _drop(self) -> None:
        """The socket is done: count it if the server (or the network) ended it, and close."""
        if self.state == OPEN and not self.we_closed:
            self.counters.disconnected += 1
        self.state = CLOSED
        self._buf = b""
        self._skip = 0
        self._head = None
        transport = self.transport
        self.transport = None
        if transport is not None:
            transport.close()

    # Receiving

    def data_received(self, data: bytes) -> None:
        """Parse server frames from ``data``, which continues whatever came before (the
        handshake's response while it is in flight). One call per read, and the parser inline:
        every call on this path is paid once per socket per message."""
        if self.state != OPEN:
            if self.state == HANDSHAKE:
                self._handshake_received(data)
            return
        if self._buf:
            data = self._buf + data
            self._buf = b""
        pos = 0
        end = len(data)
        if self._skip:
            pos = self._rest_of_payload(data, 0)
            if self._skip or self.state != OPEN:
                return
        counters = self.counters
        while True:
            left = end - pos
            if left < 2:
                break
            b0 = data[pos]
            b1 = data[pos + 1]
            size = b1 & 0x7F
            if size < 126:
                start = pos + 2
            elif size == 126:
                if left < 4:
                    break
                size = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            else:
                if left < 10:
                    break
                size = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            opcode = b0 & 0x0F
            if (b0 & 0xF0) == 0x80 and (opcode == 2 or opcode == 1) and b1 < 0x80:
                if self._head is None and start + size <= end:
                    # The usual case: a whole unfragmented data frame.
                    counters.frames += 1
                    counters.bytes += size
                    pos = start + size
                    if size >= HEADER_SIZE:
                        magic, kind, _flags, run, pub_id, seq, sent_ns = _unpack_header(data, start)
                        if magic == MAGIC:
                            if run == counters.run_id:
                                self.on_message(kind, pub_id, seq, sent_ns)
                            else:
                                counters.foreign += 1
                            continue
                    self.on_other(data[start:pos])
                    if self.state != OPEN:
                        return
                    continue
            # Off the fast path: a control frame, a fragment, an incomplete or a bad frame.
            after = self._other_frame(data, b0, b1, start, size, end)
            if after < 0:
                if after == _WAIT:
                    break
                return
            pos = after
        if pos < end:
            self._buf = data[pos:]

    #: What follows the handshake's response in its read, and what tests feed by hand.
    feed = data_received

    def _other_frame(self, data: bytes, b0: int, b1: int, start: int, size: int, end: int) -> int:
        """The frame whose payload (``size`` bytes) starts at ``start``, when it is not a whole
        unfragmented data frame. Returns where the next frame starts; :data:`_WAIT` when the
        frame is not all here yet; :data:`_STOP` when parsing must stop (the socket failed or
        closed, or the rest of ``data`` went into a fragmented message's payload)."""
        opcode = b0 & 0x0F
        if b1 & 0x80 or b0 & 0x70:
            self.fail("masked frame or reserved bits from the server")
            return _STOP
        if opcode >= 8:
            if size > 125 or not b0 & 0x80 or opcode > OP_PONG:
                self.fail("bad control frame")
                return _STOP
            if start + size > end:
                return _WAIT
            self.on_control(opcode, data[start : start + size])
            return start + size if self.state == OPEN else _STOP
        # A data frame of a fragmented message, or one whose payload is not all here yet.
        if opcode == OP_CONT:
            if self._head is None:
                self.fail("continuation frame outside a message")
                return _STOP
        elif opcode <= OP_BINARY:
            if self._head is not None:
                self.fail("new message inside a fragmented one")
                return _STOP
            self._head = b""
            self._msg_len = 0
        else:
            self.fail(f"reserved opcode {opcode}")
            return _STOP
        self._msg_len += size
        self._fin = bool(b0 & 0x80)
        self._skip = size
        after = start + self._rest_of_payload(data, start)
        return _STOP if self._skip or self.state != OPEN else after

    def _rest_of_payload(self, data: bytes, start: int) -> int:
        """Take what ``data[start:]`` has of the current payload; returns how many bytes."""
        take = min(self._skip, len(data) - start)
        head = self._head
        assert head is not None
        keep = self.keep
        if len(head) < keep and take:
            self._head = head + data[start : start + min(take, keep - len(head))]
        self._skip -= take
        if not self._skip and self._fin:
            self._message_done()
        return take

    def _message_done(self) -> None:
        head = self._head
        size = self._msg_len
        self._head = None
        self._msg_len = 0
        counters = self.counters
        counters.frames += 1
        counters.bytes += size
        if head is not None and len(head) >= HEADER_SIZE:
            magic, kind, _flags, run, pub_id, seq, sent_ns = _unpack_header(head)
            if magic == MAGIC:
                if run == counters.run_id:
                    self.on_message(kind, pub_id, seq, sent_ns)
                else:
                    counters.foreign += 1
                return
        self.on_other(head or b"")

    def on_control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self.write_frame(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            if len(payload) == 1:
                self.fail("close frame with a 1-byte payload")
                return
            # Echo the status code (not the reason), then close: the server closes TCP too.
            self.write_frame(OP_CLOSE, payload[:2])
            self._drop()

    def on_message(self, kind: int, pub_id: int, seq: int, sent_ns: int) -> None:
        """A data message with a bench header came in (counters are already updated)."""

    def on_other(self, payload: bytes) -> None:
        """A data message without a bench header (its first :attr:`keep` bytes)."""
        self.counters.other_frames += 1

    def on_open(self) -> None:
        """The upgrade is done (a protocol adapter sends its first frames here)."""

    # Sending and closing

    def write_frame(self, opcode: int, payload: bytes) -> None:
        transport = self.transport
        if transport is not None and self.state == OPEN:
            transport.write(encode_frame(opcode, payload, random_key()))

    def send_binary(self, payload: bytes) -> None:
        transport = self.transport
        if transport is not None and self.state == OPEN:
            transport.write(encode_frame(OP_BINARY, payload, random_key()))

    #: How a bench message is sent: as is (protocol adapters wrap it).
    send_bench = send_binary

    def fail(self, reason: str) -> None:
        """A protocol error from the server: close with 1002 and drop the socket."""
        self.write_frame(OP_CLOSE, CLOSE_PROTOCOL_ERROR.to_bytes(2, "big"))
        self._drop()

    def close(self) -> None:
        """Our side ends the socket: a close frame, then the transport (it is not counted)."""
        self.we_closed = True
        if self.state == HANDSHAKE:
            self._handshake_failed(ConnectionAbortedError("closed by the bench"))
            return
        self.write_frame(OP_CLOSE, CLOSE_NORMAL.to_bytes(2, "big"))
        self._drop()
