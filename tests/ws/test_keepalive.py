"""One keepalive task for every connection: pings each interval, cuts off the silent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from support import HubProcess, recv_n, t
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.protocol import State

from hub.ws.connection import HubConnection
from hub.ws.keepalive import run_keepalive


async def test_one_task_pings_every_connection_and_keeps_those_that_answer() -> None:
    """Clients that answer pings stay open over many intervals; one that stops is aborted."""
    connections: list[HubConnection] = []

    async def handler(ws: ServerConnection) -> None:
        assert isinstance(ws, HubConnection)
        connections.append(ws)
        ws.listen(lambda payload, kind: None)
        await ws.closed()

    async with serve(
        handler, "127.0.0.1", 0, create_connection=HubConnection, ping_interval=None
    ) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        task = asyncio.create_task(run_keepalive(server, interval_s=0.05, timeout_s=0.2))
        try:
            async with connect(url) as a, connect(url) as b, connect(url) as silent:
                silent.transport.pause_reading()  # it will answer no ping from now on
                await asyncio.sleep(t(1))
                assert a.state is State.OPEN and b.state is State.OPEN
                states = sorted(c.protocol.state.name for c in connections)
                assert states == ["CLOSED", "OPEN", "OPEN"]
                silent.transport.resume_reading()
        finally:
            task.cancel()


async def test_keepalive_cuts_off_a_peer_that_never_answers_pings(
    start_hub: Callable[..., HubProcess],
) -> None:
    """A peer that completes the handshake and then never answers pings is disconnected,
    abandoned with an RST; a normal client, which answers them, stays connected."""
    hub = start_hub("--workers", "1", "--ping-interval-s", "0.3", "--ping-timeout-s", "0.3")
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(
        b"GET /ka HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    async with connect(hub.url("ka")) as good:
        received = b""

        async def read_until_reset() -> bool:
            nonlocal received
            try:
                while chunk := await reader.read(4096):
                    received += chunk
            except ConnectionResetError:
                return True
            return False

        # Abandoned with an RST, not closed with a FIN: the kernel keeps nothing for it.
        assert await asyncio.wait_for(read_until_reset(), t(10)), "closed with a FIN, not an RST"
        assert received.startswith(b"HTTP/1.1 101")
        assert b"\x89\x04" in received, "the server sent a 4-byte ping"
        await good.send("alive")
        assert await recv_n(good, 1) == ["alive"]
    writer.close()


async def test_a_hub_that_was_frozen_does_not_cut_off_clients_that_answered_meanwhile(
    start_hub: Callable[..., HubProcess],
) -> None:
    """The hub is SIGSTOPped right after a ping; the client answers it at once, into the
    frozen hub's kernel. On waking, the hub's sweep is long overdue: it must see that it was
    deaf itself, not blame the client whose pong it has not read yet."""
    import os
    import signal

    hub = start_hub("--workers", "1", "--ping-interval-s", "0.5", "--ping-timeout-s", "1")
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(
        b"GET /ka HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), t(5))

    async def answer_ping(freeze: bool) -> None:
        head = await asyncio.wait_for(reader.readexactly(2), t(5))
        assert head[0] == 0x89, head  # the hub's ping, 4 bytes of payload
        payload = await reader.readexactly(head[1] & 0x7F)
        if freeze:
            os.kill(hub.proc.pid, signal.SIGSTOP)
        # A masked pong with the zero mask: the payload goes as it is.
        writer.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
        await writer.drain()

    await answer_ping(freeze=False)
    await answer_ping(freeze=True)
    try:
        await asyncio.sleep(t(3))  # three times the ping timeout, frozen
    finally:
        os.kill(hub.proc.pid, signal.SIGCONT)
    for _ in range(4):  # still pinged, never reset: two seconds of the hub awake
        await answer_ping(freeze=False)
    assert "ran" in hub.output() and "late" in hub.output(), hub.output()[-2000:]
    writer.close()
