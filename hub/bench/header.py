"""The bench's message header: what each payload starts with.

Layout (network byte order, 28 bytes)::

    magic   2s  b"hb"
    kind    B   KIND_FANOUT, KIND_ECHO or KIND_BROADCAST
    flags   B   reserved, 0
    run_id  I   the run's random id: messages of another run on the same channel are counted
                apart (``foreign``), never as this run's duplicates or reordering
    pub_id  I   publisher (or client) id
    seq     Q   sequence number, from 0 per publisher
    sent_ns Q   time.monotonic_ns() at send; CLOCK_MONOTONIC is shared by all processes on one host

The rest of the payload is padding up to the requested size. The receive path reads these 28
bytes only, whatever the size.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "KIND_BROADCAST",
    "KIND_ECHO",
    "KIND_FANOUT",
    "MAGIC",
    "Header",
    "HeaderError",
    "decode",
    "encode",
]

MAGIC = b"hb"
KIND_FANOUT = 1
KIND_ECHO = 2
KIND_BROADCAST = 3

HEADER = struct.Struct("!2sBBIIQQ")
HEADER_SIZE = HEADER.size


class HeaderError(ValueError):
    """A payload that does not start with a bench header."""


class Header(NamedTuple):
    kind: int
    run_id: int
    pub_id: int
    seq: int
    sent_ns: int


def encode(
    kind: int, pub_id: int, seq: int, sent_ns: int, size: int = HEADER_SIZE, run_id: int = 0
) -> bytes:
    """Build a payload of ``size`` bytes (at least the header's) that starts with the header."""
    head = HEADER.pack(MAGIC, kind, 0, run_id, pub_id, seq, sent_ns)
    if size <= HEADER_SIZE:
        return head
    return head + b"\x00" * (size - HEADER_SIZE)


def decode(payload: bytes | bytearray | memoryview) -> Header:
    """Read the header at the start of ``payload``; raise HeaderError when it has none."""
    if len(payload) < HEADER_SIZE:
        raise HeaderError(f"payload of {len(payload)} bytes is shorter than the header")
    magic, kind, _flags, run_id, pub_id, seq, sent_ns = HEADER.unpack_from(payload)
    if magic != MAGIC:
        raise HeaderError(f"bad magic {bytes(magic)!r}")
    return Header(kind, run_id, pub_id, seq, sent_ns)
