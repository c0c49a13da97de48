"""aiohttp's internals that hub/http/stream.py relies on still hold, on the wire.

aiohttp does not promise any of ``AIOHTTP_INTERNALS``; a release may change one without
notice. A handler here does what ``SseStreams`` does (``open_body``, batches through
``SseClient.send_batch``, ``write_eof``) on a live loopback server, under asyncio's loop and
uvloop's, and raw HTTP/1.1 and HTTP/1.0 clients read every byte. A failure names the item
that changed, so that an upgrade fails here, clearly, and not in production.
"""

from __future__ import annotations

import ast
import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvloop
from aiohttp import web
from support import ROOT, t

from hub.http.stream import AIOHTTP_INTERNALS, open_body, stream_client

TRANSPORT = "Request.transport"
IN_ORDER = "write after write: chunks in order"
CHUNKED = "chunked encoding without state between chunks"
HTTP10 = "HTTP/1.0 bodies end at close"

#: The stream's preamble, which aiohttp writes (with the headers).
FIRST = b'retry: 1500\nevent: subscribed\ndata: {"type":"subscribed"}\n\n'
#: Batches whose size lines differ: one hex digit, letters, 4 digits, and one past aiohttp's
#: 64 KiB drain limit.
BATCHES = (b"data: 1\n\n", b"d" * 0xAB, b"e" * 0x1000, b"f" * 70_000, b": keepalive\n\n")

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def changed(item: str) -> str:
    assert item in AIOHTTP_INTERNALS, f"{item!r} is not an item of AIOHTTP_INTERNALS"
    return (
        f"aiohttp {version('aiohttp')} changed {item!r} (AIOHTTP_INTERNALS in "
        "hub/http/stream.py): adapt hub/http/stream.py, or pin aiohttp to the last minor "
        "version that passes this test (pyproject.toml)"
    )


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body (RFC 9112, 7.1), framed here independently."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@asynccontextmanager
async def sse_like_server(seen: dict[str, Any]) -> AsyncIterator[int]:
    """A server on a free loopback port whose one route streams like ``SseStreams``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        seen["transport"] = request.transport
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        client = stream_client(request, None)
        await open_body(request, response, FIRST)
        for n, batch in enumerate(BATCHES):
            seen.setdefault("buffered", []).append(client.send_batch(batch))
            if n % 2:
                await asyncio.sleep(0)  # batches come from the fan-out, on later loop turns
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/sse", handler)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)  # as PublishApi
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, list[str]]]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status, *lines = head.removesuffix("\r\n\r\n").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status, headers


def run_on(loop: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        runner.run(asyncio.wait_for(main(), t(20)))


@pytest.mark.parametrize("loop", LOOPS)
def test_http11_bytes_on_the_wire_are_the_chunks_in_order(loop: str) -> None:
    """HTTP/1.1: chunked headers, then exactly each chunk in order and the last; keep-alive holds"""

    async def main() -> None:
        seen: dict[str, Any] = {}
        async with sse_like_server(seen) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                status, headers = await read_head(reader)
                assert status == "HTTP/1.1 200 OK", status
                assert headers.get("transfer-encoding") == ["chunked"], changed(CHUNKED)
                assert "content-length" not in headers, changed(CHUNKED)
                first = await reader.readexactly(len(chunk(FIRST)))
                assert first == chunk(FIRST), changed(CHUNKED)
                expected = b"".join(chunk(batch) for batch in BATCHES)
                assert await reader.readexactly(len(expected)) == expected, changed(IN_ORDER)
                assert await reader.readexactly(5) == b"0\r\n\r\n", changed(CHUNKED)
                transport = seen["transport"]
                for name in ("write", "writelines", "get_write_buffer_size", "is_closing", "abort"):
                    assert callable(getattr(transport, name, None)), changed(TRANSPORT)
                peer = transport.get_extra_info("peername")
                assert peer == writer.get_extra_info("sockname"), changed(TRANSPORT)
                buffered = seen["buffered"]
                assert all(n >= 0 for n in buffered), (changed(TRANSPORT), buffered)
                # The server's side of the connection is where the last chunk left it.
                writer.write(b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                again = await reader.read()  # to EOF
                status, _ = await read_head(asyncio_reader(again))
                assert status == "HTTP/1.1 200 OK", changed(CHUNKED)
                body = again.partition(b"\r\n\r\n")[2]
                assert body == chunk(FIRST) + expected + b"0\r\n\r\n", changed(CHUNKED)
            finally:
                writer.close()

    run_on(loop, main)


def asyncio_reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


@pytest.mark.parametrize("loop", LOOPS)
def test_http10_body_is_plain_and_ends_at_close(loop: str) -> None:
    """HTTP/1.0: no chunked framing and no length; the body is the batches, then EOF."""

    async def main() -> None:
        async with sse_like_server({}) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"GET /sse HTTP/1.0\r\n\r\n")
                status, headers = await read_head(reader)
                assert status == "HTTP/1.0 200 OK", status
                assert "transfer-encoding" not in headers, changed(HTTP10)
                assert "content-length" not in headers, changed(HTTP10)
                assert await reader.read() == FIRST + b"".join(BATCHES), changed(HTTP10)
            finally:
                writer.close()

    run_on(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_aiohttps_own_client_decodes_the_body(loop: str) -> None:
    """aiohttp's client reads the chunked body as the preamble and batches, joined."""

    async def main() -> None:
        async with sse_like_server({}) as port, aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/sse") as response:
                assert response.headers.get("Transfer-Encoding") == "chunked", changed(CHUNKED)
                assert await response.read() == FIRST + b"".join(BATCHES), changed(CHUNKED)

    run_on(loop, main)


def test_every_internal_is_checked_here() -> None:
    """Each item of AIOHTTP_INTERNALS is one that these tests check, and no other."""
    assert set(AIOHTTP_INTERNALS) == {TRANSPORT, IN_ORDER, CHUNKED, HTTP10}, (
        "AIOHTTP_INTERNALS changed: check each item on the wire in this file"
    )


# The owner check: hub/http/stream.py alone writes to aiohttp's transport and frames chunks.

OWNER = ROOT / "hub" / "http" / "stream.py"


def _is_chunk_framing(text: str) -> bool:
    """A chunk-size line template (``%x\\r\\n``) or the last chunk (``0\\r\\n\\r\\n``)."""
    return "%x\r\n" in text or "0\r\n\r\n" in text


def imports_aiohttp(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        if any(name.split(".")[0] == "aiohttp" for name in names):
            return True
    return False


def frames_a_size_line(node: ast.JoinedStr) -> bool:
    """An f-string with a hex field followed by CRLF: ``f"{size:x}\\r\\n"``."""
    for field, after in itertools.pairwise(node.values):
        spec = field.format_spec if isinstance(field, ast.FormattedValue) else None
        is_hex = isinstance(spec, ast.JoinedStr) and any(
            isinstance(s, ast.Constant) and str(s.value).endswith("x") for s in spec.values
        )
        if is_hex and isinstance(after, ast.Constant) and str(after.value).startswith("\r\n"):
            return True
    return False


def bypasses_aiohttp(path: Path) -> list[str]:
    """What ``path`` does that only the owner may: ``.transport`` in a module of hub/http
    or one that imports aiohttp, and chunk framing written by hand, anywhere."""
    tree = ast.parse(path.read_text())
    uses_aiohttp = path.is_relative_to(ROOT / "hub" / "http") or imports_aiohttp(tree)
    found = []
    for node in ast.walk(tree):
        if uses_aiohttp and isinstance(node, ast.Attribute) and node.attr == "transport":
            found.append(f"line {node.lineno}: .transport")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            if _is_chunk_framing(text):
                found.append(f"line {node.lineno}: chunk framing {node.value!r}")
        elif isinstance(node, ast.JoinedStr) and frames_a_size_line(node):
            found.append(f"line {node.lineno}: a chunk-size line in an f-string")
    return found


def test_only_stream_py_writes_to_aiohttps_transport_or_frames_chunks() -> None:
    """Only hub/http/stream.py reads .transport where aiohttp is used, or frames chunks by hand."""
    assert bypasses_aiohttp(OWNER), "the check no longer sees what stream.py does: fix it"
    for path in sorted((ROOT / "hub").rglob("*.py")):
        if path == OWNER:
            continue
        found = bypasses_aiohttp(path)
        assert not found, (
            f"{path.relative_to(ROOT)} {found}: only {OWNER.relative_to(ROOT)} may bypass "
            "aiohttp (its AIOHTTP_INTERNALS are checked here); go through it"
        )
