"""hub.v1 frames and the Redis envelope: pure, no event loop."""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import ROOT

from hub.core import protocol
from hub.core.envelope import BINARY, JSON, TEXT, Envelope, decode_envelope, encode_envelope
from hub.core.errors import ProtocolError
from hub.core.frames import v1_messages
from hub.core.protocol import ERROR_CODES, decode_binary_publish, decode_request

DOCS = ROOT / "docs" / "protocol.md"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "op": st.sampled_from([*protocol.OPS, "nope"]) | json_values,
        "id": st.integers() | st.text() | json_values,
        "channel": st.sampled_from(["a", "chat.room-1", "", "/x", "bad name"]) | json_values,
        "channels": st.lists(st.sampled_from(["a", "b", "", "ü"]), max_size=3) | json_values,
        "data": json_values,
        "text": st.text() | json_values,
        "binary": st.sampled_from(["AAE=", "!!", ""]) | json_values,
    },
)


def _decodes_or_protocol_error(data: str | bytes, binary: bool = False) -> None:
    try:
        request = decode_binary_publish(data) if binary else decode_request(data)  # type: ignore[arg-type]
    except ProtocolError as exc:
        assert exc.code in ERROR_CODES
        assert exc.message
        return
    assert request.op in protocol.OPS
    if request.op != "ping":
        assert request.channels


@given(st.binary())
def test_any_bytes_decode_or_raise_protocol_error(data: bytes) -> None:
    """Any bytes give a request or a ProtocolError, never another exception."""
    _decodes_or_protocol_error(data)
    _decodes_or_protocol_error(data, binary=True)


@given(st.text())
def test_any_text_decodes_or_raises_protocol_error(data: str) -> None:
    """Any text gives a request or a ProtocolError."""
    _decodes_or_protocol_error(data)


@given(requests)
def test_any_json_object_decodes_or_raises_protocol_error(obj: dict[str, object]) -> None:
    """Near-valid requests give a request or a ProtocolError."""
    _decodes_or_protocol_error(json.dumps(obj))


@given(json_values)
def test_published_data_round_trips_to_a_delivery(value: object) -> None:
    """A publish's JSON data arrives in the delivery frame as the same value."""
    request = decode_request(json.dumps({"op": "publish", "channel": "c", "data": value}))
    assert request.kind == JSON
    frame = v1_messages("c", [decode_envelope(encode_envelope(request.payload, request.kind))])
    assert json.loads(frame[0]) == {"type": "message", "channel": "c", "data": value}


@given(st.binary())
def test_binary_round_trips_through_envelope_and_frame(payload: bytes) -> None:
    """A binary frame's payload reaches hub.v1 deliveries intact, as base64."""
    request = decode_binary_publish(b"room\n" + payload)
    message = decode_envelope(encode_envelope(request.payload, request.kind))
    assert message == Envelope(payload, BINARY)
    delivered = json.loads(v1_messages("room", [message])[0])
    assert base64.b64decode(delivered["binary"]) == payload


@given(st.text())
def test_text_round_trips(text: str) -> None:
    """A text publish (surrogate-free) reaches raw clients as the same text."""
    try:
        request = decode_request(json.dumps({"op": "publish", "channel": "c", "text": text}))
    except ProtocolError as exc:
        assert exc.code == protocol.BAD_FIELD  # a lone surrogate
        return
    message = decode_envelope(encode_envelope(request.payload, request.kind))
    assert message.kind == TEXT and message.payload.decode() == text
    assert json.loads(v1_messages("c", [message])[0])["text"] == text


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{", protocol.BAD_JSON),
        ("NaN", protocol.BAD_JSON),
        ("[" * 100_000, protocol.BAD_JSON),
        ("[]", protocol.BAD_REQUEST),
        ('{"id": 1}', protocol.MISSING_FIELD),
        ('{"op": "jump", "id": 7}', protocol.UNKNOWN_OP),
        ('{"op": "subscribe"}', protocol.MISSING_FIELD),
        ('{"op": "subscribe", "channel": "bad name"}', protocol.BAD_CHANNEL),
        ('{"op": "subscribe", "channels": []}', protocol.BAD_FIELD),
        ('{"op": "publish", "channel": "a"}', protocol.MISSING_FIELD),
        ('{"op": "publish", "channel": "a", "text": "x", "data": 1}', protocol.BAD_REQUEST),
        ('{"op": "publish", "channel": "a", "binary": "!!"}', protocol.BAD_FIELD),
        ('{"op": "ping", "id": [1]}', protocol.BAD_FIELD),
        ('{"op": "publish", "channel": "a", "data": 1e999}', protocol.BAD_FIELD),
        ('{"op": "publish", "channel": "a", "data": {"x": [-1e400]}}', protocol.BAD_FIELD),
    ],
)
def test_request_errors_have_stable_codes(frame: str, code: str) -> None:
    """Each kind of bad request maps to its documented code."""
    with pytest.raises(ProtocolError) as info:
        decode_request(frame)
    assert info.value.code == code


def test_error_carries_the_request_id() -> None:
    """An error after the id was read answers with that id."""
    with pytest.raises(ProtocolError) as info:
        decode_request('{"op": "jump", "id": "abc"}')
    assert info.value.request_id == "abc"


def test_binary_frame_needs_a_channel_line() -> None:
    """A binary frame without '<channel>\\n' is refused."""
    with pytest.raises(ProtocolError) as info:
        decode_binary_publish(b"\x00\x01\x02")
    assert info.value.code == protocol.BAD_BINARY_FRAME


def test_subscribe_many_channels_deduplicated() -> None:
    """A subscribe may name many channels; repeats count once."""
    request = decode_request('{"op": "subscribe", "channels": ["a", "b", "a"], "id": 2}')
    assert request.channels == ("a", "b") and request.id == 2


def test_every_error_code_is_documented() -> None:
    """docs/protocol.md lists every error code."""
    text = DOCS.read_text()
    documented = set(re.findall(r"`([a-z_]+)`", text))
    missing = [code for code in ERROR_CODES if code not in documented]
    assert not missing, f"undocumented error codes: {missing}"


def test_published_numbers_are_kept_as_written() -> None:
    """A publish's data, from a frame or an HTTP body, keeps each number's text."""
    data = '{"a":1E2,"b":-0,"c":1.50,"d":[0.5,7]}'
    request = decode_request('{"op": "publish", "channel": "c", "data": ' + data + "}")
    assert request.payload == data.encode()
    body = data.replace(",", ", ").encode()
    assert protocol.message_from_body(body, JSON).payload == data.encode()
    with pytest.raises(ProtocolError) as info:
        protocol.message_from_body(b"[1e999]", JSON)
    assert info.value.code == protocol.BAD_FIELD and "Infinity" in info.value.message
