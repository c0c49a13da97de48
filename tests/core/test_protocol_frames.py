"""Server WebSocket frames and the Redis envelope (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from hub.core.envelope import (
    BINARY,
    ENVELOPE_MAGIC,
    JSON,
    TEXT,
    Envelope,
    decode_envelope,
    encode_envelope,
)
from hub.core.frames import OP_BINARY, OP_TEXT, encode_frame, raw_frames
from hub.core.jsontext import dump_json


def parse_frames(data: bytes) -> list[Frame]:
    """Parse server frames with websockets' own parser, as a client would."""
    reader = StreamReader()
    reader.feed_data(data)
    frames = []
    while reader.buffer:
        gen = Frame.parse(reader.read_exact, mask=False)
        try:
            next(gen)
        except StopIteration as stop:
            frames.append(stop.value)
    return frames


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_frames_parse_with_websockets(size: int) -> None:
    """Frames of every length class parse back with websockets' parser."""
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    (frame,) = parse_frames(encode_frame(OP_BINARY, payload))
    assert frame.opcode is Opcode.BINARY and frame.fin and frame.data == payload


def test_batch_is_one_buffer_of_frames_in_order() -> None:
    """raw_frames joins a batch's frames, text as text and binary as binary, in order."""
    msgs = [Envelope(b"one"), Envelope(b"\x00two", BINARY), Envelope(b'{"a":1}', JSON)]
    frames = parse_frames(raw_frames(msgs))
    assert [(f.opcode, f.data) for f in frames] == [
        (Opcode.TEXT, b"one"),
        (Opcode.BINARY, b"\x00two"),
        (Opcode.TEXT, b'{"a":1}'),
    ]
    assert encode_frame(OP_TEXT, b"x")[0] == 0x81


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.binary(max_size=300), st.sampled_from([TEXT, BINARY, JSON]), JSON_VALUES)
def test_envelope_round_trips(payload: bytes, kind: int, value: object) -> None:
    """What the hub publishes decodes to the same payload and kind: text is UTF-8, and JSON
    is one JSON value (the hub validates both before it publishes)."""
    if kind == TEXT:
        payload = payload.decode("utf-8", "replace").encode()
    elif kind == JSON:
        payload = dump_json(value)
    assert decode_envelope(encode_envelope(payload, kind)) == Envelope(payload, kind)


def test_foreign_payloads_are_text_when_utf8_else_binary() -> None:
    """A plain PUBLISH is text when valid UTF-8 and binary otherwise."""
    assert decode_envelope("h\u00e9llo".encode()).kind == TEXT
    assert decode_envelope(b"\x80abc").kind == BINARY
    assert decode_envelope(b"\xffnot-ours") == Envelope(b"\xffnot-ours", BINARY)
    assert ENVELOPE_MAGIC[0] == 0xFF  # never valid UTF-8, so no text is mistaken for it
    assert encode_envelope(b"text") == b"text"


def test_a_json_envelope_that_is_not_one_json_value_is_binary() -> None:
    """Invalid UTF-8, broken JSON, or JSON followed by more: delivered whole, as bytes."""
    for bad in (b'\xffhbj"\xc3\x28"', b"\xffhbj{bad", b'\xffhbj1,"type":"ack","id":1}'):
        message = decode_envelope(bad)
        assert (message.kind, message.payload) == (BINARY, bad)
    escaped = decode_envelope(b'\xffhbj"\\ud800"')  # a lone surrogate, escaped: valid JSON
    assert escaped.kind == JSON
