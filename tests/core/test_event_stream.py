"""Server-Sent Events framing: ids, gaps, the preamble, and Last-Event-ID parsing."""

from __future__ import annotations

import pytest

from hub.core.envelope import EVENT, GAP, JSON, TEXT, Envelope
from hub.core.event_stream import parse_event_id, sse_events, sse_preamble
from hub.core.sequence import Position


def test_history_messages_carry_epoch_and_offset_as_id() -> None:
    """The id is what EventSource sends back; data is the hub.v1 delivery, one line."""
    messages = [
        Envelope(b'{"a":1}', JSON, 7, "e1"),
        Envelope(b"two\nlines", TEXT, 8, "e1"),
        Envelope(b"", GAP, 12, "e1"),
        Envelope(b'j{"client":"c","user":null}', EVENT),
    ]
    assert sse_events("news", messages) == (
        b'id: e1:7\ndata: {"type":"message","channel":"news","offset":7,"data":{"a":1}}\n\n'
        b'id: e1:8\ndata: {"type":"message","channel":"news","offset":8,"text":"two\\nlines"}\n\n'
        b'event: gap\nid: e1:12\ndata: {"type":"gap","channel":"news","epoch":"e1","offset":12}\n\n'
    )


def test_plain_channels_have_no_id() -> None:
    """A message without an offset is an event with data and no id."""
    assert sse_events("c", [Envelope(b"hi")]) == (
        b'data: {"type":"message","channel":"c","text":"hi"}\n\n'
    )


def test_preamble_names_the_position_and_recovery() -> None:
    """The first event names the retry delay, the position and whether it recovered."""
    assert sse_preamble("news", Position("e1", 41), True, 1500) == (
        b"retry: 1500\nevent: subscribed\nid: e1:41\n"
        b'data: {"type":"subscribed","channel":"news","epoch":"e1","offset":41,'
        b'"recovered":true}\n\n'
    )
    assert sse_preamble("c", None, None, 900) == (
        b'retry: 900\nevent: subscribed\ndata: {"type":"subscribed","channel":"c"}\n\n'
    )


def test_event_ids_parse_or_are_refused() -> None:
    """An event id is <epoch>:<offset>; anything else is refused with None."""
    assert parse_event_id("e1:41") == Position("e1", 41)
    assert parse_event_id("a:b:41") == Position("a:b", 41)
    for bad in ("", "41", ":41", "e1:", "e1:-1", "e" * 100 + ":1"):
        assert parse_event_id(bad) is None, bad


def test_an_offset_past_any_position_raises() -> None:
    """2**63 and more is no position (the API answers 400): not silently a fresh join."""
    assert parse_event_id(f"e1:{2**63 - 1}") == Position("e1", 2**63 - 1)
    for offset in (2**63, 2**64, 10**20 - 1):
        with pytest.raises(ValueError, match="past any position"):
            parse_event_id(f"e1:{offset}")
