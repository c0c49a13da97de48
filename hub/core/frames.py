"""WebSocket frames, built once per batch for every subscriber of a wire format. Pure.

Server frames carry no mask, so the same bytes serve every subscriber: this is what lets the
fan-out build a frame once per message instead of once per connection.
"""

from __future__ import annotations

import base64
import struct
from typing import Final

from hub.core.envelope import BINARY, EVENT, GAP, JSON, TEXT, Envelope
from hub.core.jsontext import dump_json
from hub.core.sequence import HistoryPage

__all__ = [
    "OP_BINARY",
    "OP_TEXT",
    "encode_frame",
    "history_frame",
    "raw_frames",
    "v1_frames",
    "v1_message",
    "v1_messages",
]

OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2

_pack_short = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, unfragmented server-to-client WebSocket frame (RFC 6455, 5.2)."""
    length = len(payload)
    if length < 126:
        return bytes((0x80 | opcode, length)) + payload
    if length < 65536:
        return _pack_short(0x80 | opcode, 126, length) + payload
    return _pack_long(0x80 | opcode, 127, length) + payload


def raw_frames(messages: list[Envelope]) -> bytes:
    """The raw-mode frames of a batch, joined so that each subscriber gets one write.

    Raw mode has no frame to tell of a gap, so gap markers are left out (they are counted).
    """
    return b"".join(
        [
            encode_frame(OP_BINARY if m.kind == BINARY else OP_TEXT, m.payload)
            for m in messages
            if m.kind < GAP
        ]
    )


def v1_message(channel_json: bytes, m: Envelope) -> bytes:
    """One hub.v1 delivery (or gap) object; ``channel_json`` is the channel as JSON text."""
    if m.kind == EVENT:
        # b'j{"client":…}' → {"type":"join","channel":…,"client":…}
        kind = b"join" if m.payload[:1] == b"j" else b"leave"
        return b'{"type":"%b","channel":%b,%b' % (kind, channel_json, m.payload[2:])
    if m.kind == GAP:
        return b'{"type":"gap","channel":%b,"epoch":%b,"offset":%d}' % (
            channel_json,
            dump_json(m.epoch),
            m.offset,
        )
    head = b'{"type":"message","channel":' + channel_json
    if m.offset:
        head += b',"offset":%d' % m.offset
    if m.kind == JSON:
        return head + b',"data":' + m.payload + b"}"
    if m.kind == TEXT:
        return head + b',"text":' + dump_json(m.payload.decode()) + b"}"
    return head + b',"binary":"' + base64.b64encode(m.payload) + b'"}'


def v1_messages(channel: str, messages: list[Envelope]) -> list[bytes]:
    """The hub.v1 delivery frames' payloads for a batch of one channel's messages."""
    channel_json = dump_json(channel)
    return [v1_message(channel_json, m) for m in messages]


def v1_frames(channel: str, messages: list[Envelope]) -> bytes:
    """The hub.v1 text frames of a batch, joined so that each subscriber gets one write."""
    return b"".join([encode_frame(OP_TEXT, p) for p in v1_messages(channel, messages)])


def history_frame(request_id: bytes, channel: str, page: HistoryPage) -> bytes:
    """The answer to a hub.v1 history request: the messages as deliveries, with offsets.

    ``request_id`` is the request's id as JSON text.
    """
    channel_json = dump_json(channel)
    messages = b",".join(v1_message(channel_json, m) for m in page.messages)
    return b'{"type":"history","id":%b,"channel":%b,"epoch":%b,"offset":%d,"messages":[%b]}' % (
        request_id,
        channel_json,
        dump_json(page.epoch),
        page.top,
        messages,
    )
