"""Wire formats: each shared format's one encoder (pure)."""

from __future__ import annotations

from hub.core.envelope import JSON, Envelope
from hub.core.event_stream import sse_events
from hub.core.formats import ENCODERS, PER_CONNECTION, RAW, SSE, V1
from hub.core.frames import raw_frames, v1_frames

BATCH = [Envelope(b"hello"), Envelope(b'{"n":1}', JSON, 3, "ep")]


def test_each_format_indexes_its_encoder() -> None:
    """ENCODERS[RAW], [V1] and [SSE] build exactly what raw_frames, v1_frames, sse_events do."""
    assert ENCODERS[RAW]("room", BATCH) == raw_frames(BATCH)
    assert ENCODERS[V1]("room", BATCH) == v1_frames("room", BATCH)
    assert ENCODERS[SSE]("room", BATCH) == sse_events("room", BATCH)


def test_formats_are_distinct_and_per_connection_indexes_no_encoder() -> None:
    """The three shared formats index the table; PER_CONNECTION is outside it."""
    assert sorted((RAW, V1, SSE)) == list(range(len(ENCODERS)))
    assert not 0 <= PER_CONNECTION < len(ENCODERS)


def test_the_raw_encoder_ignores_the_channel() -> None:
    """Raw frames carry no channel name: the same batch gives the same bytes on any channel."""
    assert ENCODERS[RAW]("a", BATCH) == ENCODERS[RAW]("b", BATCH)
    assert ENCODERS[V1]("a", BATCH) != ENCODERS[V1]("b", BATCH)
