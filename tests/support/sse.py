"""A raw HTTP/1.1 Server-Sent Events reader for the tests: the request written by hand, the
chunked body and the event stream parsed here, so every byte the hub sends is seen."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from support.waits import t

__all__ = ["SseEvent", "SseStream", "open_sse"]


@dataclass
class SseEvent:
    event: str = "message"
    id: str | None = None
    data: str = ""
    retry: int | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseStream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int
    headers: dict[str, str]
    comments: list[str] = field(default_factory=list)
    _text: str = ""
    is_ended: bool = False

    async def _chunk(self) -> bool:
        """Read one chunk of the body into the text; False at the last chunk (or EOF)."""
        size_line = await self.reader.readline()
        if not size_line:
            return False
        size = int(size_line.strip(), 16)
        if size == 0:
            await self.reader.readline()
            self.is_ended = True
            return False
        data = await self.reader.readexactly(size + 2)
        self._text += data[:-2].decode()
        return True

    async def next(self, timeout: float = 10) -> SseEvent | None:
        """The next event (comments are kept in ``comments``); None when the stream ended."""
        async with asyncio.timeout(t(timeout)):
            while True:
                block, sep, rest = self._text.partition("\n\n")
                if sep:
                    self._text = rest
                    event = _parse(block, self.comments)
                    if event is not None:
                        return event
                    continue
                if not await self._chunk():
                    return None

    async def take(self, n: int, timeout: float = 10) -> list[SseEvent]:
        events = []
        for _ in range(n):
            event = await self.next(timeout)
            assert event is not None, f"the stream ended after {len(events)} of {n} events"
            events.append(event)
        return events

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


def _parse(block: str, comments: list[str]) -> SseEvent | None:
    event = SseEvent()
    has_field = False
    for line in block.split("\n"):
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            comments.append(value)
        elif name == "event":
            event.event, has_field = value, True
        elif name == "id":
            event.id, has_field = value, True
        elif name == "data":
            event.data, has_field = (event.data + "\n" + value if event.data else value), True
        elif name == "retry":
            event.retry = int(value)
    return event if has_field and (event.data or event.id) else None


async def open_sse(
    port: int, path: str, headers: dict[str, str] | None = None, *, rcvbuf: int = 0
) -> SseStream:
    """GET ``path`` on 127.0.0.1:``port``; the stream with its status and headers (for a
    refusal, ``headers["body"]`` holds the body)."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        # Before connecting, so that the window the hub sees is small from the start.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(t(5))
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    async with asyncio.timeout(t(10)):
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
    status_line, *header_lines = head.strip().split("\r\n")
    hdrs = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    stream = SseStream(reader, writer, int(status_line.split()[1]), hdrs)
    if stream.status != 200:
        if "content-length" in hdrs:
            body = await reader.readexactly(int(hdrs["content-length"]))
        else:
            body = b""
        hdrs["body"] = body.decode()
        await stream.close()
    return stream
