"""An SSE stream as the fan-out sees it, writing its body straight to aiohttp's transport.

aiohttp's ``StreamResponse.write`` is a coroutine per call: a task and an await per batch per
stream on the fan-out path. So, once aiohttp has sent the headers and the first chunk, the
stream writes each batch itself, chunk-framed by hand (RFC 9112, 7.1), in one synchronous
``writelines``, and aiohttp writes the last chunk at the end (``write_eof``).

This is the ONE module of hub/http that relies on what aiohttp does not promise. Each item
of ``AIOHTTP_INTERNALS`` is checked on a live server by tests/http/test_aiohttp_internals.py,
so an aiohttp release that changes one fails there with its name; pyproject.toml pins aiohttp
to the minor version tested:

- ``web.Request.transport`` is the connection's asyncio transport, and bytes written to it
  after ``await response.write(...)`` follow that write's bytes on the wire;
- after ``enable_chunked_encoding()`` and ``prepare()``, aiohttp frames each ``write`` as one
  chunk and keeps no state between chunks, so hand-framed chunks may sit between them;
- an HTTP/1.0 response has no chunked framing: its body ends when the connection closes.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiohttp import web

from hub.core.envelope import Envelope
from hub.core.event_stream import sse_events
from hub.core.formats import SSE

__all__ = ["AIOHTTP_INTERNALS", "SseClient", "open_body", "stream_client"]

AIOHTTP_INTERNALS: tuple[str, ...] = (
    "Request.transport",
    "write after write: chunks in order",
    "chunked encoding without state between chunks",
    "HTTP/1.0 bodies end at close",
)


class Transport(Protocol):
    """What a stream needs of the asyncio transport under aiohttp."""

    def write(self, data: bytes) -> None: ...
    def writelines(self, data: tuple[bytes, ...]) -> None: ...
    def get_write_buffer_size(self) -> int: ...
    def is_closing(self) -> bool: ...
    def abort(self) -> None: ...


class SseClient:
    """One SSE stream: a member of one channel, written to without aiohttp."""

    __slots__ = ("channels", "ended", "format", "is_chunked", "number", "transport", "user")

    def __init__(self, transport: Transport | None, *, is_chunked: bool, user: str | None) -> None:
        self.transport = transport
        self.is_chunked = is_chunked
        self.user = user
        self.number = 0
        self.format = SSE
        self.channels: set[str] = set()
        #: Set when the stream must end: shutdown, or a slow reader cut off.
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def send_batch(self, data: bytes) -> int:
        transport = self.transport
        if self.ended.done() or transport is None or transport.is_closing():
            return -1
        if self.is_chunked:
            if data:  # a chunk of size 0 is the last chunk: it would end the body
                transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            transport.write(data)
        return transport.get_write_buffer_size()

    def send_messages(self, channel: str, messages: list[Envelope]) -> int:
        return self.send_batch(sse_events(channel, messages))

    def write_now(self, reply: bytes | None, batches: list[tuple[str, list[Envelope]]]) -> int:
        """The replays of a join (an SSE stream has no reply frame: its preamble went first);
        return the bytes now unsent, or -1 when the stream has ended."""
        data = b"".join([sse_events(channel, messages) for channel, messages in batches])
        if data:
            return self.send_batch(data)
        transport = self.transport
        if self.ended.done() or transport is None or transport.is_closing():
            return -1
        return transport.get_write_buffer_size()

    def disconnect(self, code: int, reason: str) -> None:
        """A slow reader: cut it off now. What it has not read is lost to this stream only;
        EventSource comes back with its last complete event's id and recovers the rest."""
        self.end(reason)
        if self.transport is not None:
            self.transport.abort()

    def end(self, reason: str) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()


async def open_body(request: web.Request, response: web.StreamResponse, first: bytes) -> None:
    """Send the headers and ``first`` through aiohttp; the stream's ``SseClient`` writes
    the rest, and ``response.write_eof()`` the last chunk."""
    if request.version >= (1, 1):
        response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(first)


def stream_client(request: web.Request, user: str | None) -> SseClient:
    """The stream of ``request``: chunked from HTTP/1.1 on, close-delimited before."""
    return SseClient(request.transport, is_chunked=request.version >= (1, 1), user=user)
