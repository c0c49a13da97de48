"""The bench's own choice of source ports (``sizing.source_port``): a socket binds its port
when that is free, and falls back to the kernel's choice when a listener holds the port or the
4-tuple is in use, so that choosing ports never costs a connection."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from hub.bench.connect import _bound_socket, connect_bound


def _free_port(addr: str) -> int:
    with socket.socket() as s:
        s.bind((addr, 0))
        port: int = s.getsockname()[1]
        return port


@pytest_asyncio.fixture
async def listener() -> AsyncIterator[tuple[str, int]]:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    yield "127.0.0.1", server.sockets[0].getsockname()[1]
    server.close()


def test_binds_the_chosen_port_when_free() -> None:
    port = _free_port("127.0.0.2")
    with _bound_socket("127.0.0.2", port) as sock:
        assert sock.getsockname() == ("127.0.0.2", port)


def test_a_listening_port_falls_back_to_the_kernel() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.2", 0))
        held.listen()
        port = held.getsockname()[1]
        with _bound_socket("127.0.0.2", port) as sock:
            assert sock.getsockname()[0] == "127.0.0.2"
            assert sock.getsockname()[1] != port


async def test_a_taken_four_tuple_falls_back(listener: tuple[str, int]) -> None:
    host, port = listener
    loop = asyncio.get_running_loop()
    source = _free_port("127.0.0.3")
    first = await connect_bound(loop, "127.0.0.3", source, host, port)
    second = await connect_bound(loop, "127.0.0.3", source, host, port)
    try:
        assert first.getsockname() == ("127.0.0.3", source)
        assert second.getsockname()[0] == "127.0.0.3"
        assert second.getsockname()[1] != source
        assert second.getpeername() == (host, port)
    finally:
        first.close()
        second.close()


async def test_other_errors_are_not_swallowed() -> None:
    loop = asyncio.get_running_loop()
    closed = _free_port("127.0.0.1")
    with pytest.raises(ConnectionRefusedError):
        await connect_bound(loop, "127.0.0.4", _free_port("127.0.0.4"), "127.0.0.1", closed)
