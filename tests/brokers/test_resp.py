"""RESP2 command encoding (the wire form Redis reads), checked by parsing it back with hiredis;
the connection's handshake against a listener that resets it."""

from __future__ import annotations

import asyncio
import socket
import struct

import hiredis
import uvloop

from hub.brokers.resp import Endpoint, encode_command, open_connection, publish_header


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


async def _connect_to_a_resetting_listener(attempts: int) -> list[BaseException]:
    """Connect ``attempts`` times to a listener in the same loop that resets each
    connection as it accepts it, so the reset lands before the handshake's first command."""

    class Reset(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Reset, "127.0.0.1", 0)
    endpoint = Endpoint(host="127.0.0.1", port=server.sockets[0].getsockname()[1])
    errors: list[BaseException] = []
    try:
        for _ in range(attempts):
            try:
                conn = await open_connection(endpoint, lambda _: None, name="t", timeout_s=2)
            except Exception as exc:  # what the reconnect loop would see
                errors.append(exc)
            else:
                conn.close()
    finally:
        server.close()
    return errors


def test_a_reset_during_the_handshake_is_a_connection_error() -> None:
    """Under uvloop (as the hub runs), a connection reset before CLIENT SETNAME is written
    fails with ConnectionError (an OSError, which the reconnect loop logs as one warning),
    never a RuntimeError from writing to a closed transport (a crashed task's traceback)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        errors = runner.run(_connect_to_a_resetting_listener(200))
    odd = [e for e in errors if not isinstance(e, OSError)]
    assert not odd, f"{len(odd)} of 200 attempts: {odd[0]!r}"
