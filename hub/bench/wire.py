"""The WebSocket wire as the bench's lean client speaks it (RFC 6455, client side): the
upgrade request and its check, and masked frames. Pure: no sockets."""

from __future__ import annotations

import base64
import hashlib
import random
import struct
from urllib.parse import urlsplit

__all__ = [
    "CLOSE_NORMAL",
    "CLOSE_PROTOCOL_ERROR",
    "MAX_RESPONSE_BYTES",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "HandshakeError",
    "accept_value",
    "check_response",
    "encode_frame",
    "mask",
    "random_key",
    "request_prefix",
    "split_url",
]

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_RESPONSE_BYTES = 16 * 1024
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002

_pack_126 = struct.Struct("!BBH").pack
_pack_127 = struct.Struct("!BBQ").pack
_randbits = random.Random().getrandbits


class HandshakeError(ConnectionError):
    """The server did not accept the WebSocket upgrade."""


def request_prefix(host: str, path: str, extra: bytes = b"") -> bytes:
    """The upgrade request up to the key: built once per (host, path), shared by all sockets.
    ``extra``: more header lines, each ending in CRLF (``Handshake.header_lines``)."""
    return (
        (
            f"GET {path} HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\n"
        ).encode("latin-1")
        + extra
        + b"Sec-WebSocket-Key: "
    )


def accept_value(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` a server must answer to ``key``."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def mask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XOR the repeated 4-byte ``key`` (masking and unmasking are the same)."""
    size = len(payload)
    if not size:
        return b""
    keys = key * ((size >> 2) + 1)
    value = int.from_bytes(payload, "little") ^ int.from_bytes(keys[:size], "little")
    return value.to_bytes(size, "little")


def encode_frame(opcode: int, payload: bytes, key: bytes | None = None) -> bytes:
    """One final frame. With ``key`` (client to server), masked with it; without, unmasked."""
    size = len(payload)
    bit = 0x80 if key is not None else 0
    if size < 126:
        head = bytes((0x80 | opcode, bit | size))
    elif size < 65536:
        head = _pack_126(0x80 | opcode, bit | 126, size)
    else:
        head = _pack_127(0x80 | opcode, bit | 127, size)
    if key is None:
        return head + payload
    return head + key + mask(payload, key)


def random_key() -> bytes:
    return _randbits(32).to_bytes(4, "little")


def check_response(head: bytes, request: bytes) -> str | None:
    """Why the upgrade response ``head`` (without its blank line) is refused, or None."""
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if len(status) < 2 or status[1] != b"101":
        return f"status {lines[0][:80].decode('latin-1')!r}, not 101"
    accept: bytes | None = None
    upgrade = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"sec-websocket-accept":
            accept = value.strip()
        elif name == b"upgrade":
            upgrade = value.strip().lower() == b"websocket"
    if not upgrade:
        return "no 'Upgrade: websocket' in the response"
    key = request[request.rindex(b"Sec-WebSocket-Key: ") + 19 : -4]
    if accept != accept_value(key):
        return "bad Sec-WebSocket-Accept"
    return None


def split_url(url: str) -> tuple[str, int, str, str]:
    """(host, port, path, Host header) of a ws:// or wss:// URL; the path keeps its query."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"expected a ws:// or wss:// URL, not {parts.scheme}://")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return host, port, path, parts.netloc
