"""The WebSocket server of one hub process: handshake rules, limits and HTTP endpoints."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest
from support import ROOT, HubProcess, recv_n, t, wait_until
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

TUTORIAL_CLIENT = textwrap.dedent(
    """
    import asyncio
    import websockets

    async def hello():
        uri = "ws://localhost:%d"
        async with websockets.connect(uri) as websocket:
            await websocket.send("Hello, Server!")
            response = await websocket.recv()
            print(f"Received: {response}")

    asyncio.run(hello())
    """
)


def test_tutorial_client_gets_its_echo(start_hub: Callable[..., HubProcess]) -> None:
    """The tutorial client, unchanged, connects to ws://localhost:PORT and gets its echo."""
    hub = start_hub("--workers", "1")
    out = subprocess.run(
        [sys.executable, "-c", TUTORIAL_CLIENT % hub.port],
        capture_output=True,
        text=True,
        timeout=t(20),
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Received: Hello, Server!"


@pytest.mark.parametrize(
    "path", ["bad%20name", "a" * 201, "/leading", "emoji-\u2603", "semi;colon"]
)
async def test_invalid_channel_is_refused_with_400(
    start_hub: Callable[..., HubProcess], path: str
) -> None:
    """An invalid channel name is refused at the handshake with 400 and the naming rule."""
    hub = start_hub("--workers", "1")
    with pytest.raises(InvalidStatus) as info:
        async with connect(hub.url(path)):
            pass
    response = info.value.response
    assert response.status_code == 400
    assert b"1 to 200 characters from A-Z a-z 0-9 _ - . : /" in response.body


async def test_root_path_is_the_default_channel(start_hub: Callable[..., HubProcess]) -> None:
    """ws://host:port/ and ws://host:port/default are the same channel."""
    hub = start_hub("--workers", "1")
    async with connect(hub.url("")) as root, connect(hub.url("default")) as named:
        await root.send("hi")
        assert await recv_n(named, 1) == ["hi"]


async def test_oversized_frame_closes_with_1009_and_spares_neighbours(
    start_hub: Callable[..., HubProcess],
) -> None:
    """A frame over --max-message-bytes closes that client with 1009; a neighbour keeps going."""
    hub = start_hub("--workers", "1", "--max-message-bytes", "1024")
    async with connect(hub.url("big"), max_size=None) as big, connect(hub.url("big")) as calm:
        await big.send("x" * 2000)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(big.recv(), t(5))
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        await calm.send("still here")
        assert await recv_n(calm, 1) == ["still here"]


async def test_slow_consumer_is_closed_with_4008_and_others_keep_pace(
    start_hub: Callable[..., HubProcess],
) -> None:
    """A client that stops reading is closed with 4008; a reading client gets every message."""
    hub = start_hub("--workers", "1", "--max-buffered-bytes", "65536")
    payload = "p" * 16_000
    count = 1500  # 24 MB: far past the kernel's socket buffers plus the 64 KiB bound
    async with (
        connect(hub.url("firehose"), max_size=None) as slow,
        connect(hub.url("firehose"), max_size=None) as fast,
        connect(hub.url("firehose")) as sender,
    ):
        slow.transport.pause_reading()
        got = 0
        progress = asyncio.Event()

        async def drain_fast() -> None:
            nonlocal got
            while got < count:
                assert await fast.recv() == payload
                got += 1
                progress.set()

        reader = asyncio.create_task(drain_fast())
        for i in range(count):
            # Keep the reading client within a few messages of the sender, so that only the
            # client that stopped reading can pass the bound.
            while got < i - 2:
                progress.clear()
                await asyncio.wait_for(progress.wait(), t(10))
            await sender.send(payload)
        await asyncio.wait_for(reader, t(30))
        assert got == count
        wait_until(lambda: "slow consumer" in hub.output(), 10, "the slow-consumer log line")
        slow.transport.resume_reading()
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await asyncio.wait_for(slow.recv(), t(10))
        assert info.value.rcvd is not None and info.value.rcvd.code == 4008


def test_healthz_readyz_and_unknown_paths(start_hub: Callable[..., HubProcess]) -> None:
    """/healthz and /readyz answer 200 on a serving hub; an unknown path gets 404 with advice."""
    hub = start_hub("--workers", "1")
    assert hub.http("/healthz") == (200, "ok\n")
    assert hub.http("/readyz")[0] == 200
    status, body = hub.http("/nope")
    assert status == 404 and "ws://HOST:PORT/<channel>" in body


def test_bad_setting_is_refused_with_a_clear_message() -> None:
    """A bad HUB_* value exits 2 and names the variable and the value."""
    out = subprocess.run(
        [sys.executable, "-m", "hub", "serve"],
        capture_output=True,
        text=True,
        timeout=t(20),
        env={"HUB_MAX_BUFFERED_BYTES": "lots", "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
    )
    assert out.returncode == 2
    assert "HUB_MAX_BUFFERED_BYTES='lots'" in out.stderr


async def test_channel_is_subscribed_before_the_handshake_completes() -> None:
    """With a broker slow to confirm SUBSCRIBE, the 101 waits for it: a message published the
    moment the connection opens still reaches the client."""
    from hub.brokers.memory import MemoryBroker
    from hub.node import Node
    from hub.ws.handler import WebSocketHandler
    from hub.ws.routes import Routes
    from hub.ws.server import WebSocketServer

    class SlowBroker(MemoryBroker):
        async def subscribe(self, channel: str) -> None:
            await asyncio.sleep(0.3)
            await super().subscribe(channel)

    broker = SlowBroker()
    node = Node(broker=broker, max_buffered_bytes=1 << 20)
    await node.start()
    server = WebSocketServer(
        WebSocketHandler(node=node, routes=Routes()),
        compression=False,
        max_message_bytes=1 << 20,
        ping_interval_s=0,
        ping_timeout_s=0,
    )
    await server.start("127.0.0.1", 0)
    try:
        async with connect(f"ws://127.0.0.1:{server.port}/slow") as ws:
            broker.publish("slow", b"right away")
            assert await recv_n(ws, 1) == ["right away"]
    finally:
        await server.stop()
        await node.close()


async def test_compression_flag_negotiates_deflate_and_delivers(
    start_hub: Callable[..., HubProcess],
) -> None:
    """With --compression, clients that offer permessage-deflate get compressed frames that
    decode to the same messages, and clients that do not still get plain frames."""
    hub = start_hub("--workers", "1", "--compression")
    assert "capacity" in hub.output(), "each worker logs its connection capacity"
    async with (
        connect(hub.url("z")) as deflate,
        connect(hub.url("z"), compression=None) as plain,
    ):
        assert deflate.protocol.extensions, "permessage-deflate was negotiated"
        assert not plain.protocol.extensions
        messages: list[str | bytes] = ["a" * 1000, b"\x00" * 500, "last"]
        for m in messages:
            await plain.send(m)
        assert await recv_n(deflate, 3) == messages
        assert await recv_n(plain, 3) == messages


async def test_compression_is_off_by_default(start_hub: Callable[..., HubProcess]) -> None:
    hub = start_hub("--workers", "1")
    async with connect(hub.url("z")) as ws:
        assert not ws.protocol.extensions
