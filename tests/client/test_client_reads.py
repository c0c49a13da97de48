"""Client.history and Client.presence against a real hub and redis-server: typed answers,
and RequestRefused for the hub's error frames."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from support import HubProcess, RedisServer, async_wait_until, free_port, t

from hub.client import Client, History, Position, Presence, PresenceMember, RequestRefused

CONFIG = """
[[namespaces]]
pattern = "plain.*"     # no history, no presence

[[namespaces]]
pattern = "*"
history_size = 100
history_ttl_s = 300
presence = true
"""


@pytest.fixture
def reads_hub(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess], tmp_path: Path
) -> HubProcess:
    config = tmp_path / "hub.toml"
    config.write_text(CONFIG)
    prefix = f"r{free_port()}:"
    return start_hub(
        "--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix,
        "--config", str(config),
    )  # fmt: skip


async def test_history_returns_the_kept_messages_oldest_first(reads_hub: HubProcess) -> None:
    async with asyncio.timeout(t(20)), Client(reads_hub.url()) as client:
        for n in range(5):
            await client.publish("news", data={"n": n})
        await client.publish("news", text="six")
        page = await client.history("news", limit=3)
        assert isinstance(page, History) and page.channel == "news"
        assert page.position.offset == 6 and page.position.epoch
        assert [m.offset for m in page.messages] == [4, 5, 6]
        assert [m.value for m in page.messages] == [{"n": 3}, {"n": 4}, "six"]
        assert {m.epoch for m in page.messages} == {page.position.epoch}
        after = await client.history("news", since=Position(page.position.epoch, 1))
        assert [m.offset for m in after.messages] == [2, 3, 4, 5, 6]
        assert (await client.history("news", since=page.position)).messages == ()

        with pytest.raises(RequestRefused) as info:
            await client.history("news", since=Position("another-epoch", 1))
        assert info.value.code == "unrecoverable_position"
        with pytest.raises(RequestRefused) as info:
            await client.history("plain.x")
        assert info.value.code == "history_off"
        with pytest.raises(RequestRefused) as info:
            await client.history("news", limit=5000)
        assert info.value.code == "bad_field"


async def test_presence_lists_every_subscriber(reads_hub: HubProcess) -> None:
    async with (
        asyncio.timeout(t(20)),
        Client(reads_hub.url()) as alice,
        Client(reads_hub.url()) as bob,
    ):
        await alice.subscribe("room.1")
        await bob.subscribe("room.1")
        answers: list[Presence] = []

        async def both_present() -> bool:
            answers.append(await alice.presence("room.1"))
            return answers[-1].num_clients == 2

        await async_wait_until(both_present, 10, "both clients in the presence list")
        present = answers[-1]
        assert present.channel == "room.1" and present.num_users == 0
        assert len(present.members) == 2 and len({m.client for m in present.members}) == 2
        assert all(isinstance(m, PresenceMember) and m.user is None for m in present.members)
        await bob.unsubscribe("room.1")

        async def one_left() -> bool:
            return (await alice.presence("room.1")).num_clients == 1

        await async_wait_until(one_left, 10, "bob to leave the presence list")
        with pytest.raises(RequestRefused) as info:
            await alice.presence("plain.room")
        assert info.value.code == "presence_off"


async def test_a_read_waits_for_the_connection(redis_server: RedisServer, tmp_path: Path) -> None:
    """Asked before the hub is up, a read waits for the connection (up to publish_timeout_s)
    and is answered."""
    config = tmp_path / "hub.toml"
    config.write_text(CONFIG)
    port = free_port()
    async with Client(
        f"ws://127.0.0.1:{port}", backoff_max_s=0.2, publish_timeout_s=t(30)
    ) as client:
        reading = asyncio.create_task(client.presence("lobby"))
        await asyncio.sleep(0.3)
        assert not reading.done()
        hub = HubProcess(
            "--redis", redis_server.url, "--workers", "1", "--config", str(config),
            "--channel-prefix", f"w{port}:", port=port, log_dir=tmp_path / "logs",
        )  # fmt: skip
        try:
            present = await asyncio.wait_for(reading, t(15))
        finally:
            hub.stop()
        assert present.num_clients == 0 and present.members == ()
