"""Each protocol adapter's framing, without I/O: the join, the framing of a message, and
what each incoming frame means."""

from __future__ import annotations

import base64
import json

import pytest

from hub.bench import header as hdr
from hub.bench.protocols import PROTOCOLS, adapter_for
from hub.bench.protocols.base import IGNORED, OP_TEXT, OTHER, Framing, Seen
from hub.bench.target import with_default_path

MESSAGE = hdr.encode(hdr.KIND_FANOUT, 3, 7, 123, size=64, run_id=9)


def test_the_registry_names_each_protocol() -> None:
    assert sorted(PROTOCOLS) == ["hub.v1", "raw", "socketio"]


def test_raw_sends_the_message_as_is() -> None:
    raw = adapter_for("raw")
    assert raw.joins_on_upgrade
    assert raw.hello("room") == ()
    assert raw.framing("room") == Framing((), b"")
    assert raw.read(b"hello", "room") is OTHER


def test_hubv1_subscribes_and_publishes_binary_frames() -> None:
    v1 = adapter_for("hub.v1")
    assert v1.subprotocol == "hub.v1"
    assert not v1.joins_on_upgrade
    ((opcode, payload),) = v1.hello("chat.1")
    assert opcode == OP_TEXT
    assert json.loads(payload) == {"op": "subscribe", "channel": "chat.1", "id": "bench"}
    assert v1.framing("chat.1") == Framing((), b"chat.1\n")


@pytest.mark.parametrize("size", [hdr.HEADER_SIZE, 29, 64, 4096])
def test_hubv1_reads_the_header_from_a_base64_delivery(size: int) -> None:
    v1 = adapter_for("hub.v1")
    message = hdr.encode(hdr.KIND_FANOUT, 3, 7, 123, size=size, run_id=9)
    frame = json.dumps(
        {"type": "message", "channel": "c", "binary": base64.b64encode(message).decode()},
        separators=(",", ":"),
    ).encode()
    seen = v1.read(frame, "c")
    assert seen.header is not None
    assert hdr.decode(seen.header) == hdr.Header(hdr.KIND_FANOUT, 9, 3, 7, 123)


def test_hubv1_acks_errors_and_other_messages() -> None:
    v1 = adapter_for("hub.v1")
    ack = b'{"type":"ack","op":"subscribe","id":"bench","channels":["c"]}'
    assert v1.read(ack, "c").joined
    assert v1.read(b'{"type":"ack","op":"publish","id":1}', "c") is IGNORED
    error = v1.read(b'{"type":"error","code":"forbidden","message":"no"}', "c")
    assert error.error == "hub.v1 error forbidden: no"
    assert v1.read(b'{"type":"message","channel":"c","text":"hi"}', "c") is OTHER
    assert v1.read(b"not json", "c") is OTHER


def test_socketio_handshake_in_order() -> None:
    sio = adapter_for("socketio", "msg", "join")
    assert sio.default_path == "/socket.io/?EIO=4&transport=websocket"
    assert sio.hello("room") == ()  # the server speaks first
    open_packet = b'0{"sid":"a","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'
    assert sio.read(open_packet, "room").replies == ((OP_TEXT, b"40"),)
    connected = sio.read(b'40{"sid":"b"}', "room")
    assert connected.replies == ((OP_TEXT, b'420["join","room"]'),)
    assert not connected.joined
    assert sio.read(b"430[true]", "room").joined


def test_socketio_without_a_join_event_joins_at_connect() -> None:
    sio = adapter_for("socketio")
    assert sio.read(b'40{"sid":"b"}', "room") == Seen(joined=True)
    assert sio.read(b"430[true]", "room") is IGNORED


def test_socketio_binary_events_pings_and_refusals() -> None:
    sio = adapter_for("socketio", "msg")
    before, prefix = sio.framing("room")
    assert before == ((OP_TEXT, b'451-["msg",{"_placeholder":true,"num":0}]'),)
    assert prefix == b""  # the binary attachment is the message itself, header first
    assert sio.read(b"2", "room").replies == ((OP_TEXT, b"3"),)
    assert sio.read(b"2probe", "room").replies == ((OP_TEXT, b"3probe"),)
    assert sio.read(b'451-["msg",{"_placeholder":true,"num":0}]', "room") is IGNORED
    assert sio.read(b'42["msg","text"]', "room") is IGNORED
    assert sio.read(b"6", "room") is IGNORED
    refused = sio.read(b'44{"message":"Not authorized"}', "room").error
    assert refused is not None and "Not authorized" in refused
    assert sio.read(b"1", "room").error is not None
    assert sio.read(b"hello", "room") is OTHER


def test_a_protocols_default_path_only_fills_a_bare_url() -> None:
    path = "/socket.io/?EIO=4&transport=websocket"
    assert with_default_path("ws://h:1", path) == f"ws://h:1{path}"
    assert with_default_path("ws://h:1/", path) == f"ws://h:1{path}"
    assert with_default_path("ws://h:1/io/?EIO=4", path) == "ws://h:1/io/?EIO=4"
