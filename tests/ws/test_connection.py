"""HubConnection: inbound messages straight to a callback, pings, the handshake dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from support import HubProcess, async_wait_until, recv_n, t
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from hub.core.envelope import BINARY, TEXT
from hub.ws.connection import HubConnection


@asynccontextmanager
async def listening() -> AsyncIterator[tuple[str, list[tuple[bytes, int]], list[HubConnection]]]:
    """An in-process server of HubConnections that listen(); what they receive, and them."""
    received: list[tuple[bytes, int]] = []
    connections: list[HubConnection] = []

    async def handler(ws: ServerConnection) -> None:
        assert isinstance(ws, HubConnection)
        connections.append(ws)
        ws.listen(lambda payload, kind: received.append((payload, kind)))
        await ws.closed()

    async with serve(
        handler,
        "127.0.0.1",
        0,
        create_connection=HubConnection,
        ping_interval=None,
        compression=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/", received, connections


async def until(condition: Callable[[], bool]) -> None:
    await async_wait_until(condition, 5, "the server side of the connection")


async def test_listen_hands_each_message_to_the_callback_with_its_kind() -> None:
    """Text stays bytes, binary is BINARY, fragments arrive whole, and the headers are gone."""
    async with listening() as (url, received, connections), connect(url) as ws:
        await ws.send("héllo")
        await ws.send(b"\x00\x01")
        await ws.send(["a", "b"])
        await until(lambda: len(received) == 3)
        assert received == [("héllo".encode(), TEXT), (b"\x00\x01", BINARY), (b"ab", TEXT)]
        assert connections[0].request is None and not connections[0].is_compressed


async def test_ping_or_abort_pings_then_aborts_once_the_ping_is_overdue() -> None:
    """A pending ping within the timeout is left alone; past it the connection is aborted."""
    async with listening() as (url, _, connections), connect(url) as ws:
        await until(lambda: bool(connections))
        conn = connections[0]
        now = conn.loop.time()
        assert conn.ping_or_abort(now, timeout_s=1.0)
        await until(lambda: not conn.pending_pings)  # the client's pong acknowledged it
        ws.transport.pause_reading()  # the client answers pings by itself: it reads no more
        assert conn.ping_or_abort(now, timeout_s=1.0)
        assert conn.ping_or_abort(now + 0.5, timeout_s=1.0)  # unanswered, not yet overdue
        assert not conn.ping_or_abort(now + 2.0, timeout_s=1.0)
        await asyncio.wait_for(conn.closed(), t(5))
        ws.transport.resume_reading()  # so the client sees the abort at once


async def test_connections_are_counted_from_accept_to_loss() -> None:
    """num_open goes up when a connection is made and down when it is lost."""
    before = HubConnection.num_open
    async with listening() as (url, _, connections):
        async with connect(url):
            await until(lambda: bool(connections))
            assert HubConnection.num_open == before + 1
        await until(lambda: HubConnection.num_open == before)


async def test_fragmented_messages_arrive_whole(start_hub: Callable[..., HubProcess]) -> None:
    """A message sent in fragments reaches receivers as one message of the same kind."""
    hub = start_hub("--workers", "1")
    async with connect(hub.url("frag")) as sender, connect(hub.url("frag")) as receiver:
        await sender.send(["part one, ", "part two"])
        await sender.send([b"\x00\x01", b"\x02"])
        assert await recv_n(receiver, 2) == ["part one, part two", b"\x00\x01\x02"]


async def test_invalid_utf8_text_closes_with_1007(start_hub: Callable[..., HubProcess]) -> None:
    """A text frame that is not UTF-8 closes its sender with 1007; the channel carries on."""
    hub = start_hub("--workers", "1")
    async with connect(hub.url("utf")) as bad, connect(hub.url("utf")) as good:
        bad.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe bad"))
        bad.send_data()
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(bad.recv(), t(5))
        assert info.value.rcvd is not None and info.value.rcvd.code == 1007
        await good.send("fine")
        assert await recv_n(good, 1) == ["fine"]
