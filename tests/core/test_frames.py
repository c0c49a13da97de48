"""Server WebSocket frames, built once per batch for every subscriber (pure)."""

from __future__ import annotations

import base64
import json

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from hub.core.envelope import BINARY, EVENT, JSON, Envelope, gap
from hub.core.frames import (
    OP_BINARY,
    OP_TEXT,
    encode_frame,
    history_frame,
    raw_frames,
    v1_frames,
    v1_message,
    v1_messages,
)
from hub.core.sequence import HistoryPage


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


def test_raw_frames_leave_out_gaps_and_presence_events() -> None:
    """Raw mode has no frame for a gap or a join: only the messages go out."""
    msgs = [Envelope(b"a"), gap("e1", 4), Envelope(b'j{"client":"c"}', EVENT), Envelope(b"b")]
    assert [f.data for f in parse_frames(raw_frames(msgs))] == [b"a", b"b"]


def test_v1_message_of_each_kind() -> None:
    """Text, JSON, binary (base64), a positioned message, a gap and join/leave events."""
    ch = b'"room"'
    assert json.loads(v1_message(ch, Envelope(b"hi"))) == {
        "type": "message",
        "channel": "room",
        "text": "hi",
    }
    assert json.loads(v1_message(ch, Envelope(b"[1,2]", JSON, 7, "e"))) == {
        "type": "message",
        "channel": "room",
        "offset": 7,
        "data": [1, 2],
    }
    binary = json.loads(v1_message(ch, Envelope(b"\x00\xff", BINARY)))
    assert base64.b64decode(binary["binary"]) == b"\x00\xff"
    assert json.loads(v1_message(ch, gap("ep", 12))) == {
        "type": "gap",
        "channel": "room",
        "epoch": "ep",
        "offset": 12,
    }
    join = json.loads(v1_message(ch, Envelope(b'j{"client":"c1","user":"u"}', EVENT)))
    assert join == {"type": "join", "channel": "room", "client": "c1", "user": "u"}
    leave = json.loads(v1_message(ch, Envelope(b'l{"client":"c1","user":null}', EVENT)))
    assert leave["type"] == "leave" and leave["client"] == "c1"


def test_v1_frames_are_one_text_frame_per_message() -> None:
    """v1_frames wraps each of v1_messages' payloads in its own text frame, in order."""
    msgs = [Envelope(b"one"), Envelope(b"2", JSON)]
    frames = parse_frames(v1_frames('a"b', msgs))
    assert [f.opcode for f in frames] == [Opcode.TEXT, Opcode.TEXT]
    assert [f.data for f in frames] == v1_messages('a"b', msgs)
    assert json.loads(frames[0].data)["channel"] == 'a"b'


def test_history_frame_answers_with_the_page_and_its_position() -> None:
    """The history answer names the request id, the epoch, the top offset and the messages."""
    page = HistoryPage("ep", 5, [Envelope(b"x", offset=3, epoch="ep")])
    answer = json.loads(history_frame(b'"r1"', "room", page))
    assert answer == {
        "type": "history",
        "id": "r1",
        "channel": "room",
        "epoch": "ep",
        "offset": 5,
        "messages": [{"type": "message", "channel": "room", "offset": 3, "text": "x"}],
    }
