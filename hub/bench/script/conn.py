"""A VU's WebSocket connection, on the lean client (``lean.py``): a :class:`ScriptSocket`
keeps the whole frames it gets in a bounded inbox (a scenario's socket only reads the bench
header), and a :class:`Conn` gives the script ``send``, ``expect`` and ``close``. What a
frame means is the connection's :class:`Codec`'s: raw here, hub.v1 and Socket.IO in
``protocols.py``."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from hub.bench.lean import CLOSED, OPEN, Counters, LeanSocket
from hub.bench.script.totals import EXPECT_LATENCY, Collector
from hub.bench.wire import OP_BINARY, OP_TEXT, request_prefix, split_url

__all__ = [
    "INBOX_FRAMES",
    "PROTOCOL",
    "Codec",
    "Conn",
    "ConnectError",
    "ScriptSocket",
    "open_socket",
]

#: The most frames a connection keeps unread; older ones are dropped (and counted).
INBOX_FRAMES = 10_000
#: What Codec.decode returns for the protocol's own frames (pings, acks): no frame for the
#: script, and not a received message.
PROTOCOL = object()

Predicate = Callable[[Any], object]


class ConnectError(ConnectionError):
    """vu.connect() failed: the message says where and why; ``reason``, why alone."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class Codec:
    """The raw protocol: every frame is the script's, as ``str`` when its bytes are valid
    UTF-8, else as ``bytes`` (the lean client's parser hands over a payload without its
    opcode, so a binary frame of UTF-8 text arrives as ``str`` too). Other protocols
    override what differs."""

    name = "raw"
    subprotocol: str | None = None
    default_path = ""

    def opened(self, sock: ScriptSocket) -> None:
        """The upgrade is done: send the protocol's first frames, and set ``sock.joined``
        when the connection is usable only later."""

    def closed(self) -> None:
        """The connection is gone: fail what still waits for a reply."""

    def decode(self, sock: ScriptSocket, payload: bytes) -> object:
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return payload

    def encode(self, data: object) -> tuple[int, bytes]:
        """What ``send(data)`` writes: str as text, bytes as binary, anything else as JSON."""
        if isinstance(data, bytes | bytearray | memoryview):
            return OP_BINARY, bytes(data)
        if isinstance(data, str):
            return OP_TEXT, data.encode()
        return OP_TEXT, json.dumps(data, separators=(",", ":")).encode()


class ScriptSocket(LeanSocket):
    """One VU connection: the frames it got, with their arrival times, for ``expect``."""

    __slots__ = ("codec", "dropped", "inbox", "joined", "wakeup")

    keep = 1 << 20  # a fragmented message is kept whole, up to 1 MiB

    def __init__(self, counters: Counters, codec: Codec) -> None:
        super().__init__(counters)
        self.codec = codec
        self.inbox: deque[tuple[int, object]] = deque()
        self.dropped = 0
        self.joined: asyncio.Future[None] | None = None
        self.wakeup: asyncio.Future[None] | None = None

    def on_open(self) -> None:
        self.codec.opened(self)

    def on_other(self, payload: bytes) -> None:
        value = self.codec.decode(self, payload)
        if value is PROTOCOL:
            self.counters.frames -= 1
            self.counters.bytes -= len(payload)
            return
        self.inbox.append((time.monotonic_ns(), value))
        if len(self.inbox) > INBOX_FRAMES:
            self.inbox.popleft()
            self.dropped += 1
        self.wake()

    def wake(self) -> None:
        wakeup = self.wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        joined = self.joined
        if joined is not None and not joined.done():
            joined.set_exception(ConnectionResetError("closed before the protocol's join"))
        self.codec.closed()
        self.wake()

    def fail_join(self, reason: str) -> None:
        joined = self.joined
        if joined is not None and not joined.done():
            joined.set_exception(ConnectionRefusedError(reason))
        self.close()


class Conn:
    """A VU's connection, as the script uses it."""

    def __init__(
        self,
        sock: ScriptSocket,
        url: str,
        collector: Collector,
        latency_append: Callable[[int], None],
    ) -> None:
        self.sock = sock
        self.url = url
        self._collector = collector
        self._latency_append = latency_append
        self._sent_ns = 0  # the last send: what expect times from

    @property
    def closed(self) -> bool:
        return self.sock.state == CLOSED

    def send(self, data: object) -> None:
        """Send one frame: str as text, bytes as binary, a dict or list as JSON text; on a
        closed connection, raise ConnectionResetError (it ends the iteration, counted)."""
        opcode, payload = self.sock.codec.encode(data)
        self.write(opcode, payload)

    def write(self, opcode: int, payload: bytes) -> None:
        if self.sock.state != OPEN:
            raise ConnectionResetError("send on a closed connection")
        self.sock.write_frame(opcode, payload)
        self.sock.counters.sent += 1
        self._sent_ns = time.monotonic_ns()

    async def expect(self, predicate: Predicate | None = None, timeout: float = 5.0) -> Any:  # noqa: ASYNC109
        """The next frame for which ``predicate(frame)`` is true (frames before it are passed
        over), or None when none comes within ``timeout`` seconds or the connection closes.
        Its latency, from the last send on this connection (or from this call, when nothing
        was sent yet), goes to the ``expect_latency`` trend."""
        started = time.monotonic_ns()
        since = self._sent_ns or started
        deadline = started / 1e9 + timeout
        sock = self.sock
        loop = asyncio.get_running_loop()
        while True:
            while sock.inbox:
                arrived, frame = sock.inbox.popleft()
                if predicate is None or predicate(frame):
                    latency_us = max(1, (arrived - since) // 1000)
                    self._latency_append(latency_us)
                    self._collector.add(EXPECT_LATENCY, latency_us / 1000)
                    self._collector.expects["matched"] += 1
                    return frame
            if sock.state == CLOSED:
                self._collector.expects["closed"] += 1
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._collector.expects["timed_out"] += 1
                return None
            sock.wakeup = loop.create_future()
            try:
                await asyncio.wait_for(sock.wakeup, remaining)
            except TimeoutError:
                pass
            finally:
                sock.wakeup = None

    def close(self) -> None:
        self.sock.close()


async def open_socket(
    url: str,
    codec: Codec,
    counters: Counters,
    header_lines: bytes,
    tls: ssl.SSLContext | None,
    timeout_s: float,
) -> ScriptSocket:
    """Connect, upgrade and (for a protocol that needs one) join, within ``timeout_s``."""
    loop = asyncio.get_running_loop()
    host, port, path, netloc = split_url(url)
    sock = ScriptSocket(counters, codec)
    waiter: asyncio.Future[None] = loop.create_future()
    sock.start(request_prefix(netloc, path, header_lines), waiter)
    context = tls if url.startswith("wss:") else None
    try:
        async with asyncio.timeout(timeout_s):
            await loop.create_connection(
                lambda: sock,
                host,
                port,
                ssl=context,
                server_hostname=host if context is not None else None,
            )
            await waiter
            if sock.joined is not None:
                await sock.joined
    except BaseException:
        sock.close()
        raise
    finally:
        for future in (waiter, sock.joined):
            if future is None:
                continue
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # seen: the failure is counted once, by the caller
    return sock
