"""hub/http/stream.py: an SSE stream's writes, on a fake transport that records them."""

from __future__ import annotations

from aiohttp import HttpVersion10, HttpVersion11
from aiohttp.test_utils import make_mocked_request

from hub.core.envelope import EVENT, JSON, Envelope
from hub.core.event_stream import sse_events
from hub.core.formats import SSE
from hub.http.stream import SseClient, stream_client


class FakeTransport:
    """Records each write call (``writelines`` as one call of its parts)."""

    def __init__(self, buffered: int = 0) -> None:
        self.calls: list[tuple[bytes, ...]] = []
        self.buffered = buffered
        self.closing = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.calls.append((data,))

    def writelines(self, data: tuple[bytes, ...]) -> None:
        self.calls.append(tuple(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.aborted = self.closing = True

    @property
    def wire(self) -> bytes:
        return b"".join(b"".join(call) for call in self.calls)


def chunked(transport: FakeTransport, user: str | None = None) -> SseClient:
    return SseClient(transport, is_chunked=True, user=user)


NEWS = [Envelope(b'{"n":1}', JSON, 7, "ep"), Envelope(b'{"n":2}', JSON, 8, "ep")]


async def test_a_batch_is_one_chunk_in_one_call() -> None:
    """Chunked: a batch is one writelines of size line, data and CRLF; returns the unsent bytes."""
    transport = FakeTransport(buffered=123)
    client = chunked(transport)
    assert client.send_batch(b"x" * 0x1AF) == 123
    assert client.send_batch(b"data: 1\n\n") == 123
    assert transport.calls == [
        (b"1af\r\n", b"x" * 0x1AF, b"\r\n"),
        (b"9\r\n", b"data: 1\n\n", b"\r\n"),
    ]


async def test_an_http10_stream_writes_the_bytes_unframed() -> None:
    """Not chunked (HTTP/1.0): each batch is one plain ``write``: the body ends at close."""
    transport = FakeTransport()
    client = SseClient(transport, is_chunked=False, user=None)
    client.send_batch(b"data: 1\n\n")
    client.send_batch(b": keepalive\n\n")
    assert transport.calls == [(b"data: 1\n\n",), (b": keepalive\n\n",)]


async def test_an_empty_batch_writes_no_chunk() -> None:
    """An empty batch writes nothing: a chunk of size 0 is the last chunk and would end the body."""
    transport = FakeTransport(buffered=5)
    client = chunked(transport)
    events = [Envelope(b'{"type":"join"}', EVENT)]
    assert sse_events("room", events) == b""
    assert client.send_messages("room", events) == 5
    assert client.send_batch(b"") == 5
    assert transport.wire == b""


async def test_an_ended_or_closing_stream_is_skipped_with_minus_one() -> None:
    """Once ended, closing or without a transport, send_batch writes nothing and returns -1."""
    ended, closing = FakeTransport(), FakeTransport()
    client = chunked(ended)
    client.end("shutdown")
    assert client.send_batch(b"data: 1\n\n") == -1 and ended.calls == []
    client = chunked(closing)
    closing.closing = True
    assert client.send_batch(b"data: 1\n\n") == -1 and closing.calls == []
    assert not client.is_open
    detached = SseClient(None, is_chunked=True, user=None)
    assert detached.send_batch(b"data: 1\n\n") == -1 and not detached.is_open


async def test_send_messages_writes_the_batch_as_sse_events() -> None:
    """A fan-out batch is encoded as the channel's SSE events and sent as one chunk."""
    transport = FakeTransport()
    client = chunked(transport)
    assert client.format == SSE
    client.send_messages("news", NEWS)
    events = sse_events("news", NEWS)
    assert b"id: ep:7\n" in events and b"id: ep:8\n" in events
    assert transport.calls == [(b"%x\r\n" % len(events), events, b"\r\n")]


async def test_write_now_sends_the_replays_of_a_join_as_one_chunk() -> None:
    """A join's replays go out as one chunk in order, without the reply; no replay, no write."""
    transport = FakeTransport()
    client = chunked(transport)
    older = [Envelope(b"old", offset=3, epoch="e")]
    client.write_now(b'{"type":"ack"}', [("news", NEWS), ("log", older)])
    replay = sse_events("news", NEWS) + sse_events("log", older)
    assert transport.calls == [(b"%x\r\n" % len(replay), replay, b"\r\n")]
    client.write_now(None, [("news", [])])
    client.write_now(b'{"type":"ack"}', [])
    assert len(transport.calls) == 1


async def test_disconnect_ends_the_stream_and_aborts_its_connection() -> None:
    """disconnect() ends the stream with its reason and aborts the transport; no more writes."""
    transport = FakeTransport()
    client = chunked(transport)
    assert client.is_open and not client.ended.done()
    client.disconnect(0, "slow consumer")
    assert client.ended.result() == "slow consumer"
    assert transport.aborted and not client.is_open
    assert client.send_batch(b"data: 1\n\n") == -1 and transport.calls == []
    client.end("shutdown")  # a later end keeps the first reason
    assert client.ended.result() == "slow consumer"


async def test_stream_client_frames_chunks_from_http11_on() -> None:
    """A request's stream uses its transport, chunked from HTTP/1.1 on, as the token's user."""
    for version, is_chunked in ((HttpVersion11, True), (HttpVersion10, False)):
        transport = FakeTransport()
        request = make_mocked_request("GET", "/sse/news", version=version, transport=transport)
        client = stream_client(request, "alice")
        assert client.transport is transport and client.user == "alice"
        assert client.is_chunked is is_chunked, version
        assert client.channels == set() and client.number == 0
