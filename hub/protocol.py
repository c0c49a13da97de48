"""Wire formats, pure: WebSocket data frames built once, and the envelope hub writes into Redis.

The Redis envelope
------------------
What the hub PUBLISHes to ``<prefix><channel>`` is, by the kind of message:

* text (a raw text frame): the UTF-8 bytes as they are, so that ``redis-cli SUBSCRIBE``
  shows them and any program can publish text with a plain ``PUBLISH``;
* binary (a raw binary frame): ``ENVELOPE_MAGIC + b"b" + payload``;
* JSON (a ``hub.v1`` publish of a JSON value): ``ENVELOPE_MAGIC + b"j" + json_text``.

``ENVELOPE_MAGIC`` starts with the byte 0xFF, which never occurs in valid UTF-8, so no text
payload can be mistaken for an envelope. A payload without the magic is text when it is valid
UTF-8 and binary otherwise.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "BINARY",
    "ENVELOPE_MAGIC",
    "JSON",
    "OP_BINARY",
    "OP_TEXT",
    "TEXT",
    "Message",
    "decode_envelope",
    "encode_envelope",
    "encode_frame",
    "raw_frames",
]

TEXT: Final = 0
BINARY: Final = 1
JSON: Final = 2

ENVELOPE_MAGIC: Final = b"\xffhb"
_KIND_BYTE = {BINARY: b"b", JSON: b"j"}
_MAGIC_LEN = len(ENVELOPE_MAGIC)
_BINARY_PREFIX = ENVELOPE_MAGIC + b"b"
_JSON_PREFIX = ENVELOPE_MAGIC + b"j"

OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2

_pack_short = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack


class Message:
    """One message on a channel: its payload bytes and its kind (TEXT, BINARY or JSON)."""

    __slots__ = ("kind", "payload")

    def __init__(self, payload: bytes, kind: int = TEXT) -> None:
        self.payload = payload
        self.kind = kind

    @property
    def is_binary(self) -> bool:
        return self.kind == BINARY

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Message) and self.payload == other.payload and self.kind == other.kind
        )

    def __hash__(self) -> int:
        return hash((self.payload, self.kind))

    def __repr__(self) -> str:
        return f"Message({self.payload[:40]!r}, kind={self.kind})"


def encode_envelope(payload: bytes, kind: int = TEXT) -> bytes:
    """The bytes that the hub PUBLISHes for a message of this kind."""
    if kind == TEXT:
        return payload
    return ENVELOPE_MAGIC + _KIND_BYTE[kind] + payload


def decode_envelope(data: bytes) -> Message:
    """Read a PUBLISHed payload, whether the hub or any other program wrote it."""
    if data[:1] == b"\xff":
        if data.startswith(_BINARY_PREFIX):
            return Message(data[_MAGIC_LEN + 1 :], BINARY)
        if data.startswith(_JSON_PREFIX):
            return Message(data[_MAGIC_LEN + 1 :], JSON)
        return Message(data, BINARY)
    if data.isascii():
        return Message(data, TEXT)
    try:
        data.decode()
    except UnicodeDecodeError:
        return Message(data, BINARY)
    return Message(data, TEXT)


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, unfragmented server-to-client WebSocket frame (RFC 6455, 5.2).

    Server frames carry no mask, so the same bytes serve every subscriber: this is what lets
    the fan-out build a frame once per message instead of once per connection.
    """
    length = len(payload)
    if length < 126:
        return bytes((0x80 | opcode, length)) + payload
    if length < 65536:
        return _pack_short(0x80 | opcode, 126, length) + payload
    return _pack_long(0x80 | opcode, 127, length) + payload


def raw_frames(messages: list[Message]) -> bytes:
    """The raw-mode frames of a batch, joined so that each subscriber gets one write."""
    return b"".join(
        [encode_frame(OP_BINARY if m.kind == BINARY else OP_TEXT, m.payload) for m in messages]
    )
