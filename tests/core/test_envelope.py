"""The envelope that hub writes into Redis, and how any payload reads back (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hub.core.envelope import (
    BINARY,
    ENVELOPE_MAGIC,
    EVENT,
    GAP,
    JSON,
    TEXT,
    Envelope,
    decode_envelope,
    encode_envelope,
    encode_event,
    encode_positioned,
    gap,
)
from hub.core.jsontext import dump_json

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


def test_a_positioned_envelope_carries_its_offset_and_epoch() -> None:
    """What the history script publishes reads back as the inner message, positioned."""
    data = encode_positioned(encode_envelope(b"[1]", JSON), 42, "ep0")
    assert decode_envelope(data) == Envelope(b"[1]", JSON, 42, "ep0")
    assert decode_envelope(encode_positioned(b"plain", 1, "e")) == Envelope(b"plain", TEXT, 1, "e")


def test_a_broken_or_nested_position_is_delivered_whole_as_binary() -> None:
    """No newline, a non-numeric offset or a position inside a position is not ours."""
    nested = encode_positioned(encode_positioned(b"x", 1, "e"), 2, "e")
    for bad in (b"\xffhbo12:ep", b"\xffhboxx:ep\nhi", nested):
        assert decode_envelope(bad) == Envelope(bad, BINARY)


def test_presence_events_round_trip_and_near_misses_are_binary() -> None:
    """A join or leave reads back as an EVENT; a malformed one is plain binary."""
    join = encode_event(True, b'{"client":"c","user":null}')
    assert decode_envelope(join) == Envelope(b'j{"client":"c","user":null}', EVENT)
    assert decode_envelope(encode_event(False, b'{"client":"c"}')).payload[:1] == b"l"
    assert decode_envelope(ENVELOPE_MAGIC + b"px{}").kind == BINARY


def test_gap_marker_and_equality() -> None:
    """gap() is a GAP at epoch:offset; envelopes compare by payload, kind and position."""
    marker = gap("ep", 9)
    assert (marker.kind, marker.epoch, marker.offset, marker.payload) == (GAP, "ep", 9, b"")
    assert Envelope(b"a") == Envelope(b"a") and Envelope(b"a") != Envelope(b"a", BINARY)
    assert Envelope(b"a", TEXT, 1, "x") != Envelope(b"a", TEXT, 1, "y")
    assert hash(Envelope(b"a", JSON, 2)) == hash(Envelope(b"a", JSON, 2))
    assert "offset=3" in repr(Envelope(b"a", TEXT, 3, "e")) and "offset" not in repr(Envelope(b"a"))
