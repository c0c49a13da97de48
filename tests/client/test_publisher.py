"""hub.client.Publisher: backend code publishing straight into Redis, as the hubs would."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from support import RedisServer, free_port

from hub.brokers.names import FlatNames
from hub.client import Published, Publisher
from hub.core.config import Settings


def test_sync_and_async_publish_through_the_history_script(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The hubs' config file says which channels keep history: those get offsets from the
    script and are kept in the stream; the others are a plain PUBLISH."""
    config = tmp_path / "hub.toml"
    config.write_text('[[namespaces]]\npattern = "log.*"\nhistory_size = 10\nhistory_ttl_s = 60\n')
    prefix = f"p{free_port()}:"
    settings = Settings.from_env({}, redis_url=redis_server.url, config=str(config),
                                 channel_prefix=prefix)  # fmt: skip
    with Publisher.from_settings(settings) as publisher:
        assert publisher.publish("log.app", data={"a": 1}) == Published("log.app", offset=1)
        assert publisher.publish("log.app", text="two").offset == 2
        assert publisher.publish("plain", binary=b"\x00") == Published("plain", receivers=0)
        with pytest.raises(ValueError, match="JSON"):
            publisher.publish("log.app", data=float("nan"))
        with pytest.raises(ValueError, match="exactly one"):
            publisher.publish("log.app")

    async def async_side() -> Published:
        async with Publisher.from_settings(settings) as publisher:
            return await publisher.apublish("log.app", binary=b"\x01")

    assert asyncio.run(async_side()).offset == 3
    stream, _ = FlatNames(prefix.encode()).history_keys("log.app")
    assert redis_server.client().xlen(stream) == 3


def test_an_unreachable_redis_raises(tmp_path: Path) -> None:
    publisher = Publisher(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.5)
    with pytest.raises(redis.ConnectionError):
        publisher.publish("x", text="y")
    with pytest.raises(ValueError, match="no Redis"):
        Publisher.from_settings(Settings.from_env({}))


class ReplyDroppingProxy:
    """A TCP proxy in front of a real redis-server that, once armed, cuts the connection
    instead of passing on the reply to the next EVAL: the script ran, its reply was lost."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.is_armed = False
        self.num_dropped = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self.redis_port)
        eval_sent = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if b"EVAL" in data.upper():
                    eval_sent.set()
                redis_w.write(data)
                await redis_w.drain()

        async def downstream() -> None:
            while data := await redis_r.read(65536):
                if self.is_armed and eval_sent.is_set():
                    self.is_armed = False
                    self.num_dropped += 1
                    return
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        client_w.close()
        redis_w.close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_a_lost_reply_does_not_store_the_message_twice(
    redis_server: RedisServer, flavour: str
) -> None:
    """The history script ran but its reply was lost with the connection: the publisher tries
    again as a resend, the script recognises the id, and the stream holds the message once."""
    proxy = ReplyDroppingProxy(redis_server.port)
    port = await proxy.start()
    prefix = f"p{free_port()}:"
    settings = Settings.from_env(
        {}, redis_url=f"redis://127.0.0.1:{port}/0", channel_prefix=prefix,
        history_size=100, history_ttl_s=60,
    )  # fmt: skip
    async with Publisher.from_settings(settings) as publisher:

        async def publish(n: int) -> int | None:
            if flavour == "sync":
                return (await asyncio.to_thread(publisher.publish, "log", data=n)).offset
            return (await publisher.apublish("log", data=n)).offset

        assert await publish(1) == 1
        proxy.is_armed = True
        assert await publish(2) == 0  # already published
        assert proxy.num_dropped == 1
        assert await publish(3) == 3
        publisher.close()
    stream, _ = FlatNames(prefix.encode()).history_keys("log")
    assert redis_server.client().xlen(stream) == 3
    assert proxy.server is not None
    proxy.server.close()
