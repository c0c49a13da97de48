"""hub.client.Publisher: backend code publishing straight into Redis, as the hubs would."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from support import RedisServer, free_port

from hub.brokers.scripts import history_keys
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
    stream, _ = history_keys(prefix.encode(), "log.app")
    assert redis_server.client().xlen(stream) == 3


def test_an_unreachable_redis_raises(tmp_path: Path) -> None:
    publisher = Publisher(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.5)
    with pytest.raises(redis.ConnectionError):
        publisher.publish("x", text="y")
    with pytest.raises(ValueError, match="no Redis"):
        Publisher.from_settings(Settings.from_env({}))
