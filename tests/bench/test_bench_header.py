"""Tests of hub.bench.header: the payload header."""

from __future__ import annotations

import pytest

from hub.bench import header as hdr


def test_round_trip() -> None:
    """A header encodes and decodes back to the same fields."""
    payload = hdr.encode(hdr.KIND_FANOUT, 7, 123456789, 987654321012, 100, run_id=0xDEADBEEF)
    assert len(payload) == 100
    assert hdr.decode(payload) == hdr.Header(
        hdr.KIND_FANOUT, 0xDEADBEEF, 7, 123456789, 987654321012
    )


def test_minimum_size_is_the_header() -> None:
    """A size below the header's gives the header alone."""
    assert len(hdr.encode(hdr.KIND_ECHO, 0, 0, 0, 1)) == hdr.HEADER_SIZE


def test_decode_reads_a_memoryview() -> None:
    """The receive path hands a memoryview; decoding it reads only the header."""
    payload = hdr.encode(hdr.KIND_BROADCAST, 1, 2, 3, 4096)
    assert hdr.decode(memoryview(payload)).seq == 2


@pytest.mark.parametrize("payload", [b"", b"hb", b"xx" + b"\x00" * 30])
def test_decode_rejects_other_payloads(payload: bytes) -> None:
    """Short payloads and a wrong magic raise HeaderError."""
    with pytest.raises(hdr.HeaderError):
        hdr.decode(payload)
