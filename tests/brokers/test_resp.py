"""RESP2 command encoding (the wire form Redis reads), checked by parsing it back with hiredis;
the connection's handshake against a listener that resets it; its liveness options and
deadlines (hub/brokers/liveness.py)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import hiredis
import pytest
import uvloop
from support import RedisServer

from hub.brokers.liveness import USER_TIMEOUT_S
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


def test_a_connection_to_redis_is_hardened_against_a_silent_network(
    redis_server: RedisServer,
) -> None:
    """Under uvloop, on a real redis-server: keepalive, TCP_USER_TIMEOUT and SO_LINGER 0 (an
    RST on close) are set on the socket; a handshake that gets no answer times out; a reply
    that does not come within its deadline aborts the connection, not just the command."""

    async def main() -> None:
        endpoint = Endpoint.from_url(redis_server.url)
        conn = await open_connection(endpoint, lambda _: None, name="t")
        assert conn.transport is not None
        sock = conn.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 5
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == int(
            USER_TIMEOUT_S * 1000
        )
        linger = sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)
        assert struct.unpack("ii", linger) == (1, 0)
        # Redis stalls (CLIENT PAUSE): the command's reply deadline passes, the connection
        # is dropped (the broker's loops then reconnect), and nothing waits on it any more.
        redis_server.client().execute_command("CLIENT", "PAUSE", "1500", "ALL")
        with pytest.raises(TimeoutError):
            await conn.command(b"PING", timeout_s=0.3)
        await asyncio.wait_for(conn.lost, 1)
        assert not conn.is_open
        # A listener that accepts and never answers: the handshake has a deadline too.
        silent = socket.create_server(("127.0.0.1", 0))
        try:
            port = silent.getsockname()[1]
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await open_connection(
                    Endpoint(host="127.0.0.1", port=port), lambda _: None, name="t", timeout_s=0.5
                )
            assert time.monotonic() - started < 1.5
        finally:
            silent.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
