"""Redis going away: clients stay connected, held messages arrive after, no deaf instance."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest
from support import HubProcess, RedisServer, free_port, recv_n, wait_until
from websockets.asyncio.client import connect


async def test_redis_restart_keeps_clients_and_delivers_held_messages(
    own_redis: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """redis-server killed and restarted: clients stay, outage messages arrive, delivery resumes."""
    args = ("--redis", own_redis.url, "--workers", "1")
    a, b = start_hub(*args), start_hub(*args)
    async with connect(a.url("outage")) as wa, connect(b.url("outage")) as wb:
        await wa.send("before")
        assert await recv_n(wb, 1) == ["before"]
        assert await recv_n(wa, 1) == ["before"]

        own_redis.stop()
        wait_until(lambda: not a.is_ready() and not b.is_ready(), 10, "/readyz to turn 503")
        assert a.http("/readyz")[0] == 503
        for i in range(5):
            await wa.send(f"during {i}")
        await wb.send("during b")

        own_redis.start()
        wait_until(lambda: a.is_ready() and b.is_ready(), 20, "/readyz to turn 200 again")
        expected_a = [f"during {i}" for i in range(5)]
        got_b = await recv_n(wb, 6, timeout=15)
        assert [m for m in got_b if m != "during b"] == expected_a
        assert "during b" in got_b

        await wb.send("after")
        got_a = await recv_n(wa, 7, timeout=15)
        assert [m for m in got_a if m != "during b"] == [*expected_a, "after"]
        assert await recv_n(wb, 1) == ["after"]
    assert "redis subscriber connection lost" in a.output()


async def test_client_kill_pubsub_resubscribes(
    own_redis: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """CLIENT KILL TYPE pubsub drops the subscriber; the hub notices, resubscribes and delivers."""
    hub = start_hub("--redis", own_redis.url, "--workers", "1")
    async with connect(hub.url("kill-test")) as ws:
        await ws.send("one")
        assert await recv_n(ws, 1) == ["one"]
        assert own_redis.client().execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
        wait_until(lambda: "redis subscriber connection lost" in hub.output(), 10, "the gap log")
        wait_until(hub.is_ready, 10, "/readyz after the resubscribe")
        wait_until(
            lambda: own_redis.client().pubsub_numsub("hub:kill-test")[0][1] == 1,
            10,
            "the channel to be subscribed again",
        )
        await ws.send("two")
        assert await recv_n(ws, 1) == ["two"]


class BlackholeProxy:
    """A TCP proxy to Redis that can silently stop forwarding Redis's replies.

    Connections stay open while replies vanish: the deaf-instance failure that only an
    end-to-end probe detects.
    """

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.blackhole = False
        self.num_connections = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(5)

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.num_connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            try:
                while data := await src.read(65536):
                    if up or not self.blackhole:
                        dst.write(data)
                        await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def proxy(own_redis: RedisServer) -> Iterator[BlackholeProxy]:
    p = BlackholeProxy(own_redis.port)
    yield p
    p.close()


async def test_deaf_instance_turns_unready_and_recovers(
    proxy: BlackholeProxy, start_hub: Callable[..., HubProcess]
) -> None:
    """When replies stop while connections stay up, the probe marks the hub deaf (503) and it
    reconnects; once Redis answers again it is ready and delivers."""
    hub = start_hub(
        "--redis",
        f"redis://127.0.0.1:{proxy.port}",
        "--workers",
        "1",
        "--probe-interval-s",
        "0.2",
        "--probe-timeout-s",
        "1",
    )
    async with connect(hub.url("deaf")) as ws:
        await ws.send("heard")
        assert await recv_n(ws, 1) == ["heard"]
        connections_before = proxy.num_connections
        proxy.blackhole = True
        wait_until(lambda: not hub.is_ready(), 10, "/readyz to turn 503 on a deaf hub")
        assert "this process is deaf" in hub.output()
        proxy.blackhole = False
        wait_until(hub.is_ready, 15, "/readyz to recover")
        assert proxy.num_connections > connections_before
        await ws.send("heard again")
        got = await recv_n(ws, 1, timeout=10)
        assert got == ["heard again"]
