"""Redis Sentinel: hubs on ``redis+sentinel://`` follow the master through a graceful
``SENTINEL FAILOVER`` and through a SIGKILL of the master, mid-stream, every message counted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from support import HubProcess, free_port, t, wait_until
from support.counting import count, publish_numbered, stream_through_a_kill
from support.sentinel import SentinelDeployment

from hub.brokers.redis.sentinel import SentinelTarget, async_client, sync_client
from hub.client import Client, Gap, NotRecovered

HISTORY = ("--history-size", "5000", "--history-ttl-s", "300")


@pytest.fixture
def sentinel() -> Iterator[SentinelDeployment]:
    with SentinelDeployment.running() as deployment:
        yield deployment


def new_master_up(deployment: SentinelDeployment, old_port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            port = deployment.master_port()
            role = deployment.server_on(port).client().execute_command("ROLE")
        except Exception:
            return False
        return port != old_port and role[0] in (b"master", "master")

    return check


def test_a_sentinel_url_is_parsed_as_documented() -> None:
    target = SentinelTarget.from_url(
        "redis+sentinel://user:p%40ss@10.0.0.1:26379,10.0.0.2:26380/mymaster?db=2"
    )
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380))
    assert target.service == "mymaster"
    assert (target.master.username, target.master.password, target.master.db) == (
        "user",
        "p@ss",
        2,
    )
    for bad in ("redis+sentinel://h:26379", "redis+sentinel://h:x/m", "redis+sentinel://h/m?x=1"):
        with pytest.raises(ValueError, match="use"):
            SentinelTarget.from_url(bad)


async def test_a_graceful_failover_loses_nothing_for_recovering_clients(
    sentinel: SentinelDeployment, start_hub: Callable[..., HubProcess]
) -> None:
    """SENTINEL FAILOVER while 400 numbered messages flow from hub A to a recovering client
    on hub B, both on redis+sentinel://: 0 lost, 0 duplicated, 0 reordered; both hubs ready
    again on the new master. Without the history script's writer check this lost 98: the
    new master gave out again offsets the client had seen from the old one."""
    args = ("--redis", sentinel.url, "--workers", "1", "--channel-prefix", f"s{free_port()}:")
    a, b = start_hub(*args, *HISTORY), start_hub(*args, *HISTORY)
    old = sentinel.master_port()
    total, numbers, errors = 400, [], []
    async with Client(b.url(), backoff_max_s=0.5) as client:
        sub = await client.subscribe("feed")

        async def read() -> None:
            while not numbers or numbers[-1] < total - 1:
                try:
                    numbers.append((await anext(sub)).data["n"])
                except (NotRecovered, Gap) as exc:
                    errors.append(exc)

        reading = asyncio.create_task(read())
        publishing = asyncio.create_task(publish_numbered(a.url(), "feed", range(total), rate=100))
        await asyncio.sleep(1)
        sentinel.failover()
        await publishing
        await asyncio.wait_for(reading, t(30))
    wait_until(new_master_up(sentinel, old), 20, "the replica to be the master")
    counts = count(numbers, range(total))
    assert counts.is_exact, counts
    # The writes that reached only the old master after the promotion are gone from the
    # history, so the channel restarts under a new epoch (scripts.py), and says so: at most
    # one Gap, at offset 0 of a new epoch. Nothing is skipped as "already seen".
    assert all(isinstance(e, Gap) and e.offset == 0 for e in errors), errors
    assert len(errors) <= 1, errors
    for hub in (a, b):
        hub.wait_ready(10)
        assert "Traceback" not in hub.output()
    assert "moved" in a.output() or "switch-master" in a.output()


async def test_a_killed_master_is_replaced_and_every_later_message_arrives(
    sentinel: SentinelDeployment, start_hub: Callable[..., HubProcess]
) -> None:
    """The master is SIGKILLed mid-stream: /readyz turns 503 while there is none, and 200
    once the sentinels have promoted the replica; every message sent after the new master is
    up reaches a raw subscriber of another hub, once."""
    args = ("--redis", sentinel.url, "--workers", "1", "--channel-prefix", f"k{free_port()}:")
    a, b = start_hub(*args), start_hub(*args)
    old = sentinel.master_port()
    run = await stream_through_a_kill(
        a, b, "chat", kill=sentinel.server_on(old).stop, is_up=new_master_up(sentinel, old)
    )
    assert 503 in run.statuses, "/readyz never turned 503 while there was no master"
    assert run.statuses[-1] == 200 and a.is_ready()
    assert run.after_up().is_exact, run.after_up()
    print(f"sent before the new master was up: {run.up_at}; of those: {run.before_up()}")
    for hub in (a, b):
        assert "Traceback" not in hub.output()


async def test_redis_py_clients_of_a_sentinel_url_reach_the_master(
    sentinel: SentinelDeployment,
) -> None:
    """The clients that Publisher and the API's /api/channels use, for a redis+sentinel://
    URL: both write on the master the sentinels name."""
    sync = sync_client(sentinel.url, socket_timeout=2)
    assert sync.set("written-by", "sync") and sync.execute_command("ROLE")[0] == b"master"
    sync.close()
    client = async_client(sentinel.url, socket_timeout=2)
    try:
        assert await client.get("written-by") == b"sync"
        assert (await client.execute_command("ROLE"))[0] == b"master"
    finally:
        await client.aclose()
    master = sentinel.server_on(sentinel.master_port()).client()
    assert master.get("written-by") == b"sync"
