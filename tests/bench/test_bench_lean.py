"""The lean bench client (hub/bench/lean.py, hub/bench/wire.py): its frame parser and
handshake, without sockets."""

from __future__ import annotations

import asyncio
import itertools
import struct
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.bench import header as hdr
from hub.bench import lean, wire
from hub.bench.lean import Counters, LeanSocket
from hub.bench.wire import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True


class Recorder(LeanSocket):
    __slots__ = ("messages",)

    def __init__(self) -> None:
        super().__init__(Counters())
        self.messages: list[tuple[int, int, int, int]] = []

    def on_message(self, kind: int, pub_id: int, seq: int, sent_ns: int) -> None:
        self.messages.append((kind, pub_id, seq, sent_ns))


def open_socket() -> tuple[Recorder, FakeTransport]:
    sock = Recorder()
    transport = FakeTransport()
    sock.transport = transport  # type: ignore[assignment]
    sock.state = lean.OPEN
    return sock, transport


def server_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    """An unmasked frame, as a server sends it."""
    first = (0x80 if fin else 0) | rsv | opcode
    size = len(payload)
    if size < 126:
        head = bytes((first, size))
    elif size < 65536:
        head = struct.pack("!BBH", first, 126, size)
    else:
        head = struct.pack("!BBQ", first, 127, size)
    return head + payload


def client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Decode what the client wrote; every frame must be final and masked."""
    out = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b0 & 0x80, "client frames are final"
        assert b1 & 0x80, "client frames are masked"
        size = b1 & 0x7F
        pos += 2
        if size == 126:
            size = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif size == 127:
            size = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        key = data[pos : pos + 4]
        pos += 4
        out.append((b0 & 0x0F, wire.mask(data[pos : pos + size], key)))
        pos += size
    return out


def feed_in_pieces(sock: LeanSocket, stream: bytes, cuts: list[int]) -> None:
    points = sorted({min(max(cut, 0), len(stream)) for cut in cuts} | {0, len(stream)})
    for start, end in itertools.pairwise(points):
        sock.data_received(stream[start:end])


# What a message of the stream is: its payload, and how it is cut into frames.


@dataclass
class Message:
    payload: bytes
    text: bool
    fragments: list[int]  # cut points in the payload: one frame per piece
    bench: tuple[int, int, int, int] | None  # the header fields, when it has one


@st.composite
def messages(draw: st.DrawFn) -> Message:
    if draw(st.booleans()):
        fields = (
            draw(st.sampled_from([hdr.KIND_FANOUT, hdr.KIND_ECHO, hdr.KIND_BROADCAST])),
            draw(st.integers(0, 2**32 - 1)),
            draw(st.integers(0, 2**64 - 1)),
            draw(st.integers(0, 2**64 - 1)),
        )
        size = draw(st.sampled_from([hdr.HEADER_SIZE, 64, 125, 126, 300, 70_000]))
        payload = hdr.encode(*fields, size=size)
        bench: tuple[int, int, int, int] | None = fields
    else:
        payload = draw(st.binary(max_size=200))
        if len(payload) >= 2 and payload[:2] == hdr.MAGIC and len(payload) >= hdr.HEADER_SIZE:
            payload = b"xx" + payload[2:]
        bench = None
    cuts = draw(st.lists(st.integers(0, len(payload)), max_size=4))
    return Message(payload, draw(st.booleans()), sorted(cuts), bench)


def message_frames(message: Message, pings: list[bytes]) -> bytes:
    """The message's frames, with ``pings`` interleaved between its fragments."""
    points = [0, *message.fragments, len(message.payload)]
    pieces = [message.payload[a:b] for a, b in itertools.pairwise(points)]
    out = b""
    for i, piece in enumerate(pieces):
        opcode = (OP_TEXT if message.text else OP_BINARY) if i == 0 else OP_CONT
        out += server_frame(opcode, piece, fin=i == len(pieces) - 1)
        if i < len(pings):
            out += server_frame(OP_PING, pings[i])
    return out


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(
        st.tuples(messages(), st.lists(st.binary(max_size=125), max_size=2)), max_size=8
    ),
    cuts=st.lists(st.integers(0, 200_000), max_size=30),
    close_code=st.integers(1000, 4999),
)
def test_parser_any_split(
    items: list[tuple[Message, list[bytes]]], cuts: list[int], close_code: int
) -> None:
    """However the stream is cut, every message counts once, pings get pongs, close closes."""
    stream = b"".join(message_frames(message, pings) for message, pings in items)
    stream += server_frame(OP_CLOSE, close_code.to_bytes(2, "big") + b"bye")
    sock, transport = open_socket()
    feed_in_pieces(sock, stream, cuts)

    expected_bench = [m.bench for m, _ in items if m.bench is not None]
    assert sock.messages == expected_bench
    counters = sock.counters
    assert counters.frames == len(items)
    assert counters.bytes == sum(len(m.payload) for m, _ in items)
    assert counters.other_frames == sum(1 for m, _ in items if m.bench is None)
    # message_frames puts at most one ping after each fragment.
    sent_pings = [ping for m, pings in items for ping in pings[: len(m.fragments) + 1]]
    written = client_frames(bytes(transport.written))
    assert written[:-1] == [(OP_PONG, ping) for ping in sent_pings]
    assert written[-1] == (OP_CLOSE, close_code.to_bytes(2, "big"))
    assert transport.closed
    assert sock.state == lean.CLOSED
    assert sock.transport is None
    assert counters.disconnected == 1
    assert sock._buf == b"" and sock._head is None


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(hdr.HEADER_SIZE, 3000), min_size=1, max_size=20))
def test_parser_byte_by_byte(sizes: list[int]) -> None:
    """One byte at a time: the slowest path gives the same counts; the buffer empties after."""
    stream = b"".join(
        server_frame(OP_BINARY, hdr.encode(hdr.KIND_FANOUT, 7, seq, 1000 + seq, size))
        for seq, size in enumerate(sizes)
    )
    sock, transport = open_socket()
    for i in range(len(stream)):
        sock.data_received(stream[i : i + 1])
    assert sock.messages == [(hdr.KIND_FANOUT, 7, seq, 1000 + seq) for seq in range(len(sizes))]
    assert sock.counters.frames == len(sizes)
    assert sock.counters.bytes == sum(sizes)
    assert sock._buf == b"" and sock._skip == 0 and sock._head is None
    assert transport.written == b""


def test_fragmented_header_across_frames() -> None:
    """A bench header split over three continuation frames is still read."""
    payload = hdr.encode(hdr.KIND_BROADCAST, 3, 9, 12345, 100)
    stream = (
        server_frame(OP_BINARY, payload[:5], fin=False)
        + server_frame(OP_PING, b"p")
        + server_frame(OP_CONT, payload[5:20], fin=False)
        + server_frame(OP_CONT, payload[20:], fin=True)
    )
    sock, transport = open_socket()
    sock.data_received(stream)
    assert sock.messages == [(hdr.KIND_BROADCAST, 3, 9, 12345)]
    assert sock.counters.frames == 1
    assert sock.counters.bytes == 100
    assert client_frames(bytes(transport.written)) == [(OP_PONG, b"p")]


def test_short_and_foreign_messages_are_other_frames() -> None:
    sock, _ = open_socket()
    sock.data_received(server_frame(OP_TEXT, b"hello") + server_frame(OP_BINARY, b"x" * 40))
    assert sock.messages == []
    assert sock.counters.frames == 2
    assert sock.counters.other_frames == 2
    assert sock.counters.bytes == 45


def test_pong_from_server_is_ignored() -> None:
    sock, transport = open_socket()
    sock.data_received(server_frame(OP_PONG, b"late"))
    assert transport.written == b"" and sock.state == lean.OPEN


@pytest.mark.parametrize(
    "stream",
    [
        server_frame(OP_CONT, b"orphan"),  # continuation outside a message
        server_frame(OP_BINARY, b"a", fin=False) + server_frame(OP_TEXT, b"b"),  # nested
        server_frame(OP_BINARY, b"x", rsv=0x40),  # reserved bit, no extension agreed
        server_frame(0x3, b"x"),  # reserved data opcode
        server_frame(OP_PING, b"x", fin=False),  # fragmented control frame
        bytes((0x89, 126)) + (200).to_bytes(2, "big") + b"x" * 200,  # control frame > 125
        bytes((0x82, 0x81)) + b"keyx" + b"y",  # masked frame from the server
        server_frame(OP_CLOSE, b"\x03"),  # 1-byte close payload
    ],
)
def test_protocol_errors_close_with_1002(stream: bytes) -> None:
    sock, transport = open_socket()
    sock.data_received(stream)
    assert client_frames(bytes(transport.written)) == [(OP_CLOSE, (1002).to_bytes(2, "big"))]
    assert transport.closed and sock.state == lean.CLOSED
    # Nothing more is parsed after the error.
    sock.data_received(server_frame(OP_BINARY, hdr.encode(1, 0, 0, 0)))
    assert sock.messages == []


def test_close_by_us_is_not_a_disconnect() -> None:
    sock, transport = open_socket()
    sock.close()
    assert client_frames(bytes(transport.written)) == [(OP_CLOSE, (1000).to_bytes(2, "big"))]
    assert transport.closed
    sock.connection_lost(None)
    assert sock.counters.disconnected == 0


def test_connection_lost_counts_a_disconnect() -> None:
    sock, _ = open_socket()
    sock.connection_lost(ConnectionResetError())
    assert sock.counters.disconnected == 1 and sock.transport is None


def test_send_binary_is_masked() -> None:
    sock, transport = open_socket()
    payload = hdr.encode(hdr.KIND_ECHO, 0, 5, 6, 300)
    sock.send_binary(payload)
    assert client_frames(bytes(transport.written)) == [(OP_BINARY, payload)]
    assert transport.written[1] == 0x80 | 126


@given(payload=st.binary(max_size=300), key=st.binary(min_size=4, max_size=4))
def test_mask_round_trip(payload: bytes, key: bytes) -> None:
    masked = wire.mask(payload, key)
    assert len(masked) == len(payload)
    assert bytes(b ^ key[i % 4] for i, b in enumerate(payload)) == masked
    assert wire.mask(masked, key) == payload


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_encode_frame_lengths(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = wire.encode_frame(OP_BINARY, payload, b"abcd")
    assert client_frames(frame) == [(OP_BINARY, payload)]


# The handshake


def accept_response(request: bytes, accept: bytes | None = None) -> bytes:
    key = request.split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0]
    value = accept if accept is not None else wire.accept_value(key)
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"sec-websocket-accept: " + value + b"\r\n\r\n"
    )


def test_accept_value_rfc_example() -> None:
    assert wire.accept_value(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_then_frames_in_the_same_read() -> None:
    loop = asyncio.new_event_loop()
    try:
        waiter: asyncio.Future[None] = loop.create_future()
        sock = Recorder()
        sock.start(wire.request_prefix("127.0.0.1:8765", "/room"), waiter)
        transport = FakeTransport()
        sock.connection_made(transport)  # type: ignore[arg-type]
        request = bytes(transport.written)
        assert request.startswith(b"GET /room HTTP/1.1\r\nHost: 127.0.0.1:8765\r\n")
        assert request.endswith(b"\r\n\r\n")
        assert sock.transport is None  # not open until the server agrees
        response = accept_response(request)
        frame = server_frame(OP_BINARY, hdr.encode(hdr.KIND_FANOUT, 1, 2, 3))
        # The response and a first frame, cut in the middle of the response.
        sock.data_received(response[:30])
        sock.data_received(response[30:] + frame)
        assert waiter.done() and waiter.exception() is None
        assert sock.transport is transport and sock._handshake is None
        assert sock.messages == [(hdr.KIND_FANOUT, 1, 2, 3)]
    finally:
        loop.close()


@pytest.mark.parametrize(
    "make_response",
    [
        lambda req: accept_response(req, accept=b"AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        lambda req: b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        lambda req: accept_response(req).replace(b"Upgrade: websocket\r\n", b""),
    ],
)
def test_handshake_refused(make_response: object) -> None:
    loop = asyncio.new_event_loop()
    try:
        waiter: asyncio.Future[None] = loop.create_future()
        sock = Recorder()
        sock.start(wire.request_prefix("h", "/"), waiter)
        transport = FakeTransport()
        sock.connection_made(transport)  # type: ignore[arg-type]
        sock.data_received(make_response(bytes(transport.written)))  # type: ignore[operator]
        assert isinstance(waiter.exception(), wire.HandshakeError)
        assert transport.aborted and sock.transport is None
        assert sock.counters.disconnected == 0
    finally:
        loop.close()


def test_idle_socket_holds_no_buffer() -> None:
    sock, _ = open_socket()
    sock.data_received(server_frame(OP_BINARY, hdr.encode(1, 0, 0, 0, 5000)))
    assert sock._buf == b"" and sock._head is None and sock._skip == 0
    assert not hasattr(sock, "__dict__")


def test_messages_of_another_run_are_counted_apart() -> None:
    """A run's own messages reach on_message; another run's (same channel) are only counted
    as foreign, whole or fragmented, so they are never this run's duplicates."""
    sock, _ = open_socket()
    sock.counters.run_id = 7
    mine = hdr.encode(hdr.KIND_FANOUT, 0, 0, 5, 40, run_id=7)
    theirs = hdr.encode(hdr.KIND_FANOUT, 0, 0, 5, 40, run_id=8)
    sock.feed(server_frame(OP_BINARY, theirs) + server_frame(OP_BINARY, mine))
    sock.feed(server_frame(OP_BINARY, theirs[:10], fin=False))
    sock.feed(server_frame(OP_CONT, theirs[10:]))
    assert sock.messages == [(hdr.KIND_FANOUT, 0, 0, 5)]
    assert (sock.counters.foreign, sock.counters.frames, sock.counters.other_frames) == (2, 3, 0)
