"""RESP2 command encoding (the wire form Redis reads), checked by parsing it back with hiredis."""

from __future__ import annotations

import hiredis

from hub.brokers.resp import encode_command, publish_header


def parse(wire: bytes) -> object:
    reader = hiredis.Reader()
    reader.feed(wire)
    value = reader.gets()
    assert reader.gets() is False, "one command, nothing after it"
    return value


def test_encode_command_round_trips_any_bytes() -> None:
    """Lengths, not delimiters, frame each argument: CRLF and empty arguments survive."""
    args = (b"SUBSCRIBE", b"hub:a", b"with\r\ncrlf", b"", b"\xff\x00")
    assert parse(encode_command(*args)) == list(args)


def test_the_hot_publish_path_writes_the_publish_command() -> None:
    """The header, the payload and CRLF, written as three parts, are exactly PUBLISH."""
    key, payload = b"hub:chat", b"\xffhbj" + b"x" * 70_000
    wire = publish_header(key, len(payload)) + payload + b"\r\n"
    assert wire == encode_command(b"PUBLISH", key, payload)
    assert parse(wire) == [b"PUBLISH", key, payload]
