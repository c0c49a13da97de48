"""History and recovery over real redis-server and hub processes, counted per subscriber."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import HubProcess, RedisServer, free_port, http, run_python, scrape, t
from support import total as total_of
from support.counting import Reader, count, publish_numbered
from websockets.asyncio.client import connect

HISTORY = ("--history-size", "20000", "--history-ttl-s", "300", "--recovery-max-messages", "5000")


def pair(
    start_hub: Callable[..., HubProcess], redis_url: str, *extra: str
) -> tuple[HubProcess, HubProcess]:
    args = ("--redis", redis_url, "--workers", "1", "--channel-prefix", f"h{free_port()}:")
    return start_hub(*args, *HISTORY, *extra), start_hub(*args, *HISTORY, *extra)


def got(n: int) -> Callable[[Reader], bool]:
    return lambda r: len(r.numbers) >= n and r.numbers[-1] >= n - 1


async def test_a_client_recovers_exactly_what_it_missed(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """A client reads messages on A and leaves; 500 more are published on B; it comes back
    to B with its position and gets exactly those 500, in order, recovered: true."""
    a, b = pair(start_hub, redis_server.url)
    reader = Reader("news")
    first_batch = asyncio.create_task(reader.session(a.url(), until=got(20)))
    await asyncio.sleep(0.3)
    await publish_numbered(b.url(), "news", range(20), rate=500)
    assert await first_batch
    await publish_numbered(b.url(), "news", range(20, 520), rate=2000)
    assert await reader.session(b.url(), until=got(520))
    assert reader.acks[-1]["positions"]["news"]["recovered"] is True
    counts = count(reader.numbers, range(520))
    assert counts.is_exact, counts


async def test_sigkill_of_an_instance_loses_nothing(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """A is SIGKILLed mid-stream while B publishes at a steady rate; A's clients move to B
    with their positions and lose 0, with 0 duplicated, in order."""
    a, b = pair(start_hub, redis_server.url)
    readers = [Reader("feed") for _ in range(3)]
    total = 1500
    tasks = [asyncio.create_task(r.resume([a.url(), b.url()], until=got(total))) for r in readers]
    await asyncio.sleep(0.5)
    publisher = asyncio.create_task(publish_numbered(b.url(), "feed", range(total), rate=300))
    await asyncio.sleep(t(1.5))
    a.signal(signal.SIGKILL)
    await publisher
    await asyncio.wait_for(asyncio.gather(*tasks), t(60))
    for r in readers:
        counts = count(r.numbers, range(total))
        assert counts.is_exact, (counts, r.acks, r.trace[-40:])
        assert r.gaps == []
        assert any(ack["positions"]["feed"].get("recovered") for ack in r.acks[1:])


async def test_client_kill_of_pubsub_is_repaired_on_the_server(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """CLIENT KILL TYPE pubsub mid-stream: clients that stay connected lose nothing, because
    each hub reads what its subscription missed from the history."""
    a, b = pair(start_hub, redis_server.url)
    readers = [Reader("live") for _ in range(2)]
    total = 3000
    tasks = [asyncio.create_task(r.session(a.url(), until=got(total), timeout=60)) for r in readers]
    await asyncio.sleep(0.5)
    publisher = asyncio.create_task(publish_numbered(b.url(), "live", range(total), rate=600))
    for _ in range(5):
        await asyncio.sleep(0.8)
        redis_server.client().client_kill_filter(_type="pubsub")
    await publisher
    assert all(await asyncio.wait_for(asyncio.gather(*tasks), t(60)))
    for r in readers:
        counts = count(r.numbers, range(total))
        assert counts.is_exact, counts
        assert len(r.acks) == 1, "the clients never reconnected"
    # The subscriptions did miss messages, and the history gave them back.
    assert total_of(await scrape(a.port), "hub_history_repaired_total") > 0


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    with RedisServer.running("--appendonly", "yes", "--appendfsync", "always") as server:
        yield server


async def test_redis_restart_with_aof_loses_nothing(
    aof_redis: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """redis-server (AOF, fsync always) is killed and restarted mid-stream: connected clients
    lose nothing, and a client that reconnects afterwards recovers with nothing lost."""
    a, b = pair(start_hub, aof_redis.url)
    total = 1200
    stayer, leaver = Reader("aof"), Reader("aof")
    stay = asyncio.create_task(stayer.session(a.url(), until=got(total), timeout=90))
    leave = asyncio.create_task(leaver.session(a.url(), until=got(100)))
    await asyncio.sleep(0.5)
    publisher = asyncio.create_task(publish_numbered(b.url(), "aof", range(total), rate=200))
    assert await leave
    await asyncio.sleep(t(1))
    aof_redis.stop()
    await asyncio.sleep(1.0)
    aof_redis.start()
    await publisher
    assert await asyncio.wait_for(stay, t(90))
    assert await leaver.session(b.url(), until=got(total)), (
        json.dumps(leaver.acks),
        leaver.numbers[-3:],
        leaver.position,
    )
    assert leaver.acks[-1]["positions"]["aof"]["recovered"] is True
    for r in (stayer, leaver):
        counts = count(r.numbers, range(total))
        assert counts.is_exact, counts


async def test_redis_restart_without_persistence_is_never_silent(
    own_redis: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """Without persistence the history is gone after a restart: the epoch changes, and a
    recovering client is told recovered: false."""
    a, b = pair(start_hub, own_redis.url)
    reader = Reader("volatile")
    first = asyncio.create_task(reader.session(a.url(), until=got(10)))
    await asyncio.sleep(0.3)
    await publish_numbered(b.url(), "volatile", range(10), rate=500)
    assert await first
    old_epoch = reader.epoch
    own_redis.stop()
    own_redis.start()
    for hub in (a, b):
        hub.wait_ready(30)
    await publish_numbered(b.url(), "volatile", range(10, 15), rate=500)
    assert await reader.session(b.url(), until=lambda r: len(r.acks) == 2)
    ack = reader.acks[-1]
    assert ack["positions"]["volatile"]["recovered"] is False
    assert ack["positions"]["volatile"]["epoch"] != old_epoch


@pytest.mark.parametrize(("size", "recovered"), [(20000, True), (1000, False)])
async def test_a_burst_while_away_is_recovered_only_if_history_holds_it(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess], size: int, recovered: bool
) -> None:
    """10,000 messages while a client is away: recovered exactly with a history of 20,000;
    recovered: false with a history of 1,000 (nothing replayed in part)."""
    hub = start_hub(
        "--redis",
        redis_server.url,
        "--workers",
        "1",
        "--channel-prefix",
        f"b{free_port()}:",
        "--history-size",
        str(size),
        "--history-ttl-s",
        "300",
        "--recovery-max-messages",
        "20000",
    )
    reader = Reader("burst")
    first = asyncio.create_task(reader.session(hub.url(), until=got(5)))
    await asyncio.sleep(0.3)
    await publish_numbered(hub.url(), "burst", range(5), rate=1000)
    assert await first
    await publish_numbered(hub.url(), "burst", range(5, 10_005), rate=20_000)
    done = await reader.session(
        hub.url(), until=lambda r: bool(r.acks) and (not recovered or got(10_005)(r)), timeout=60
    )
    assert done
    assert reader.acks[-1]["positions"]["burst"]["recovered"] is recovered
    if recovered:
        counts = count(reader.numbers, range(10_005))
        assert counts.is_exact, counts
    else:
        assert reader.numbers == list(range(5))


async def test_history_request_and_raw_backlog(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess], tmp_path: Path
) -> None:
    """The history op returns deliveries with offsets; ?last=N gives a raw client the
    channel's last N messages before the live ones; GET /api/history answers the same."""
    config = tmp_path / "hub.toml"
    config.write_text(
        '[[namespaces]]\npattern = "room.*"\nhistory_size = 100\nhistory_ttl_s = 60\n'
    )
    hub = start_hub(
        "--redis",
        redis_server.url,
        "--workers",
        "1",
        "--channel-prefix",
        f"r{free_port()}:",
        "--config",
        str(config),
        api=True,
    )
    await publish_numbered(hub.url(), "room.1", range(30), rate=1000)
    async with connect(hub.url(), subprotocols=["hub.v1"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"op": "history", "channel": "room.1", "limit": 5, "id": 7}))
        answer = json.loads(await asyncio.wait_for(ws.recv(), t(5)))
        assert answer["type"] == "history" and answer["id"] == 7 and answer["offset"] == 30
        assert [m["offset"] for m in answer["messages"]] == [26, 27, 28, 29, 30]
        since = {"epoch": answer["epoch"], "offset": 27}
        await ws.send(json.dumps({"op": "history", "channel": "room.1", "since": since, "id": 8}))
        answer = json.loads(await asyncio.wait_for(ws.recv(), t(5)))
        assert [m["data"]["n"] for m in answer["messages"]] == [27, 28, 29]
        await ws.send(json.dumps({"op": "history", "channel": "plain", "id": 9}))
        error = json.loads(await asyncio.wait_for(ws.recv(), t(5)))
        assert error["type"] == "error" and error["code"] == "history_off"
    async with connect(hub.url("room.1?last=3")) as raw:
        backlog = [json.loads(await asyncio.wait_for(raw.recv(), t(5))) for _ in range(3)]
        assert backlog == [{"n": 27}, {"n": 28}, {"n": 29}]
        await publish_numbered(hub.url(), "room.1", range(30, 31), rate=1000)
        assert json.loads(await asyncio.wait_for(raw.recv(), t(5))) == {"n": 30}
    status, body = http(
        "GET", f"{hub.api_url}/api/history/room.1?limit=2&since={since['epoch']}:29"
    )
    assert status == 200 and [m["offset"] for m in body["messages"]] == [30, 31]
    status, body = http("GET", f"{hub.api_url}/api/history/room.1?since=nope:1")
    assert status == 410 and body["error"]["code"] == "unrecoverable_position"
    status, body = http("GET", f"{hub.api_url}/api/history/plain")
    assert status == 404 and body["error"]["code"] == "history_off"


def test_hub_publish_goes_through_the_history_script(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess], tmp_path: Path
) -> None:
    """`hub publish --redis` to a history channel (known from --config) keeps the message
    and gives it its offset, like a publish through a hub."""
    config = tmp_path / "hub.toml"
    config.write_text('[[namespaces]]\npattern = "log.*"\nhistory_size = 10\nhistory_ttl_s = 60\n')
    prefix = f"c{free_port()}:"
    hub = start_hub(
        "--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix,
        "--config", str(config), api=True,
    )  # fmt: skip
    for text in ("one", "two"):
        out = run_python(
            "-m", "hub", "publish", "log.app", text, "--redis", redis_server.url,
            "--channel-prefix", prefix, "--config", str(config),
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
    assert "at offset 2" in out.stdout
    status, body = http("GET", f"{hub.api_url}/api/history/log.app")
    assert status == 200
    assert [(m["offset"], m["text"]) for m in body["messages"]] == [(1, "one"), (2, "two")]
