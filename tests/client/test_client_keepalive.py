"""hub.client's own keepalive, without the lab: a "hub" that accepts the WebSocket handshake
and then goes silent (no pong, no FIN, no RST) is abandoned with an RST within ping interval +
timeout, and the client fails over to the next URL at once, without waiting out a connect
timeout on the silent one. The lab test (tests/lab/test_lab_client_partition.py) does the
same through a real partition."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Callable

from support import HubProcess, RedisServer, t
from support.counting import history_publisher

from hub.client import Client

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HISTORY = ("--history-size", "1000", "--history-ttl-s", "300")


class SilentHub:
    """Accepts the upgrade (hub.v1), then reads and answers nothing; records how it ended."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.ends: list[str] = []
        self.num_connects = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.num_connects += 1
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Protocol: hub.v1\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        # Read what comes (so no RST comes from unread data here), answer none of it.
        try:
            while await reader.read(65536):
                pass
            self.ends.append("fin")
        except ConnectionResetError:
            self.ends.append("rst")
        writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_silent_hub_is_abandoned_with_an_rst_and_failed_over(
    start_hub: Callable[..., HubProcess],
) -> None:
    hub = start_hub("--workers", "1")
    silent = SilentHub()
    silent_url = await silent.start()
    try:
        client = Client(
            [silent_url, hub.url()],
            ping_interval_s=0.5,
            ping_timeout_s=0.5,
            connect_timeout_s=30,  # were the silent URL retried first, this would show
            backoff_max_s=0.2,
        )
        started = time.monotonic()
        async with client:
            # Only the real hub acknowledges: the subscribe completes there.
            sub = await asyncio.wait_for(client.subscribe("news"), t(10))
            took = time.monotonic() - started
            assert client.url == hub.url()
            await client.publish("news", data={"n": 1})
            message = await asyncio.wait_for(anext(sub), t(5))
            assert message.data == {"n": 1}
        assert silent.ends == ["rst"], silent.ends  # abandoned, not closed gracefully
        assert silent.num_connects == 1  # failed over at once, not back to the silent one
        assert 0.5 <= took <= t(1.0) + 1.5, took  # ping every 0.5 s, 0.5 s for the pong
    finally:
        silent.close()


async def test_a_hub_that_answers_pings_is_kept(start_hub: Callable[..., HubProcess]) -> None:
    """The keepalive must not cut a live connection: many intervals, one connection."""
    hub = start_hub("--workers", "1")
    async with Client(hub.url(), ping_interval_s=0.1, ping_timeout_s=0.5) as client:
        await client.subscribe("news")
        await asyncio.sleep(t(1.5))
        assert client.is_connected and client.num_connects == 1


async def test_an_application_that_falls_behind_is_not_taken_for_a_silent_hub(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """The application reads nothing for a while: the subscription's buffer fills, the client
    stops reading its socket, and the pongs wait unread behind the messages. That is the
    client's own pause, not a silent hub: it keeps the connection, and loses nothing."""
    hub = start_hub("--redis", redis_server.url, "--workers", "1", *HISTORY)
    async with Client(hub.url(), queue_size=5, ping_interval_s=0.2, ping_timeout_s=0.2) as client:
        sub = await client.subscribe("behind")
        async with history_publisher(redis_server.url) as publisher:
            for n in range(200):
                await publisher.apublish("behind", data={"n": n, "pad": "x" * 2000})
        await asyncio.sleep(t(2))  # ten pings' worth of not reading
        numbers = [(await asyncio.wait_for(anext(sub), t(5))).data["n"] for _ in range(200)]
        assert client.num_connects == 1, "a paused reader was abandoned as a silent hub"
    assert numbers == list(range(200))
