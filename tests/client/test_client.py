"""hub.client.Client against real hub and redis-server processes: failover, recovery, token
renewal, close codes, and the errors that tell the application of a loss."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from support import HubProcess, RedisServer, free_port, t
from support.counting import count, history_publisher

from hub.client import (
    Client,
    ClientClosed,
    Gap,
    Message,
    NotConnected,
    NotRecovered,
    Position,
    PublishFailed,
    RequestRefused,
    Subscription,
)
from hub.core.errors import InvalidChannel

HISTORY = ("--history-size", "20000", "--history-ttl-s", "300")
SECRET = "test-secret-for-the-client-tests"


async def read_numbers(sub: Subscription, numbers: list[int], total: int) -> list[Exception]:
    """Collect ``data["n"]`` until the last number arrives; return the discontinuities."""
    errors: list[Exception] = []
    while not numbers or numbers[-1] < total - 1:
        try:
            message = await anext(sub)
        except (NotRecovered, Gap) as exc:
            errors.append(exc)
            continue
        numbers.append(message.data["n"])
    return errors


async def test_sigkill_of_its_hub_loses_nothing(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """The client reads a numbered stream from hub A; A is SIGKILLed mid-stream; the client
    moves to the second URL (B) and recovers: 0 lost, 0 duplicated, 0 reordered."""
    prefix = f"c{free_port()}:"
    args = ("--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix, *HISTORY)
    a, b = start_hub(*args), start_hub(*args)
    total = 1200
    numbers: list[int] = []
    async with Client([a.url(), b.url()], backoff_max_s=0.5) as client:
        sub = await client.subscribe("feed")
        assert client.url == a.url()
        reading = asyncio.create_task(read_numbers(sub, numbers, total))
        async with history_publisher(redis_server.url, prefix) as publisher:
            for n in range(total):
                await publisher.apublish("feed", data={"n": n})
                if n == total // 3:
                    a.signal(signal.SIGKILL)
                await asyncio.sleep(0.002)
        errors = await asyncio.wait_for(reading, t(60))
        assert client.url == b.url()
        assert client.num_connects == 2
    counts = count(numbers, range(total))
    assert counts.is_exact, counts
    assert not errors


async def test_an_expiring_token_is_renewed_in_band_and_nothing_is_lost(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """Before the token expires (half its life here, 30 s before on longer ones) the client
    calls get_token (again, when it fails) and sends the new token in a refresh op: the hub
    moves the connection's expiry, so there is no 4001 and no reconnect, and nothing
    published meanwhile is lost."""
    prefix = f"c{free_port()}:"
    hub = start_hub(
        "--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix,
        "--jwt-secret", SECRET, *HISTORY,
    )  # fmt: skip

    def mint(ttl_s: float) -> str:
        claims = {"sub": "alice", "channels": "feed", "exp": time.time() + ttl_s}
        return jwt.encode(claims, SECRET, algorithm="HS256")

    fresh: list[str] = []
    calls: list[int] = []

    async def get_token() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("the auth service is down for a moment")
        fresh.append(mint(600))
        return fresh[-1]

    total = 500
    numbers: list[int] = []
    async with Client(hub.url(), token=mint(3), get_token=get_token) as client:
        sub = await client.subscribe("feed")
        reading = asyncio.create_task(read_numbers(sub, numbers, total))
        async with history_publisher(redis_server.url, prefix) as publisher:
            for n in range(total):
                await publisher.apublish("feed", data={"n": n})
                await asyncio.sleep(0.01)  # over 5 s: the token expires on the way
        errors = await asyncio.wait_for(reading, t(30))
        assert len(calls) == 2  # a failing get_token is tried again
        assert client.num_token_refreshes == 1 and client.token == fresh[0]
        assert client.num_connects == 1  # refreshed in band, before the exp
    counts = count(numbers, range(total))
    assert counts.is_exact, counts
    assert not errors


async def test_without_get_token_an_expired_token_stops_the_client(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """4001 and nothing to renew the token with: the subscription raises ClientClosed. (A
    publish the token does not allow raises RequestRefused first, and the client goes on.)"""
    hub = start_hub("--redis", redis_server.url, "--workers", "1", "--jwt-secret", SECRET)
    claims = {"subscribe": "news", "exp": int(time.time() + 2)}
    async with Client(hub.url(), token=jwt.encode(claims, SECRET, algorithm="HS256")) as client:
        sub = await client.subscribe("news")
        with pytest.raises(RequestRefused) as refused:
            await client.publish("news", text="x")
        assert refused.value.code == "forbidden"
        with pytest.raises(ClientClosed) as raised:
            await asyncio.wait_for(anext(sub), t(10))
        assert raised.value.code == 4001
        with pytest.raises(ClientClosed):
            await client.publish("news", text="x")


async def test_a_refused_handshake_stops_the_client(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """A bad token is refused with 401: with no get_token, the client stops (no blind
    retry loop) and subscribe raises ClientClosed with the status."""
    hub = start_hub("--redis", redis_server.url, "--workers", "1", "--jwt-secret", SECRET)
    async with Client(hub.url(), token="not-a-jwt") as client:
        with pytest.raises(ClientClosed) as raised:
            await asyncio.wait_for(client.subscribe("news"), t(10))
        assert raised.value.code == 401
        assert client.num_connects == 0


async def test_a_lost_position_raises_not_recovered_and_delivery_goes_on(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """Subscribing from a position the history does not hold raises NotRecovered from the
    iteration (never hidden); the subscription then delivers what comes next."""
    prefix = f"c{free_port()}:"
    hub = start_hub(
        "--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix, *HISTORY
    )
    async with history_publisher(redis_server.url, prefix) as publisher:
        await publisher.apublish("news", data={"n": 0})
        async with Client(hub.url()) as client:
            sub = await client.subscribe("news", since=Position("gone-epoch", 3))
            with pytest.raises(NotRecovered) as raised:
                await asyncio.wait_for(anext(sub), t(10))
            assert raised.value.channel == "news" and raised.value.offset == 1
            await publisher.apublish("news", data={"n": 1})
            message = await asyncio.wait_for(anext(sub), t(10))
            assert (message.data, message.offset) == ({"n": 1}, 2)


async def test_publish_round_trip_of_each_kind(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """data, text and binary come back as they went; a refused publish raises RequestRefused."""
    hub = start_hub("--redis", redis_server.url, "--workers", "1", "--channel-prefix", "rt:")
    async with Client(hub.url()) as client:
        sub = await client.subscribe("mixed")
        await client.publish("mixed", data={"a": [1, None]})
        await client.publish("mixed", text="héllo")
        await client.publish("mixed", binary=b"\x00\xff")
        got = [await asyncio.wait_for(anext(sub), t(10)) for _ in range(3)]
        assert got == [
            Message("mixed", "json", data={"a": [1, None]}),
            Message("mixed", "text", text="héllo"),
            Message("mixed", "binary", binary=b"\x00\xff"),
        ]
        with pytest.raises(InvalidChannel):
            await client.subscribe("a" * 300)
        with pytest.raises(ValueError):
            await client.publish("mixed", text="x", data=1)
    with pytest.raises(ValueError):
        Client([])


async def test_a_frame_too_big_fails_that_publish_and_the_client_goes_on(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """1009: the publish that caused it raises PublishFailed; it is not resent, and the
    client reconnects and keeps its subscription."""
    hub = start_hub("--redis", redis_server.url, "--workers", "1", "--max-message-bytes", "1000")
    async with Client(hub.url(), backoff_max_s=0.2) as client:
        sub = await client.subscribe("big")
        with pytest.raises(PublishFailed, match="1009"):
            await client.publish("big", text="x" * 5000)
        await client.publish("big", text="small")
        message = await asyncio.wait_for(anext(sub), t(10))
        assert message.text == "small"
        assert client.num_connects == 2


async def test_a_disconnected_publish_waits_then_raises(tmp_path: Path) -> None:
    """With no hub to reach, a publish waits publish_timeout_s and raises NotConnected;
    past max_waiting_publishes it raises at once."""
    url = f"ws://127.0.0.1:{free_port()}"
    async with Client(url, publish_timeout_s=0.3, max_waiting_publishes=1) as client:
        first = asyncio.create_task(client.publish("x", text="a"))
        await asyncio.sleep(0.05)
        with pytest.raises(NotConnected, match="wait already"):
            await client.publish("x", text="b")
        with pytest.raises(NotConnected, match="within"):
            await first


async def test_a_publish_queued_while_down_goes_out_after_the_reconnect(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A hub restarts on the same port: a publish made while it was down is delivered once
    it is back, and the subscription resumes without being asked to."""
    port = free_port()
    args = ("--redis", redis_server.url, "--workers", "1", "--channel-prefix", "q:")
    hub = HubProcess(*args, port=port, log_dir=tmp_path).wait_ready()
    try:
        async with Client(hub.url(), backoff_max_s=0.2, publish_timeout_s=t(30)) as client:
            sub = await client.subscribe("q")
            hub.stop()
            await asyncio.sleep(0.3)
            publishing = asyncio.create_task(client.publish("q", text="while down"))
            await asyncio.sleep(0.3)
            assert not publishing.done()
            hub = HubProcess(*args, port=port, log_dir=tmp_path).wait_ready()
            await asyncio.wait_for(publishing, t(30))
            message = await asyncio.wait_for(anext(sub), t(10))
            assert message.text == "while down"
    finally:
        hub.stop()


async def test_a_slow_reader_costs_a_reconnect_not_messages(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> None:
    """The application stops reading; the bounded buffer stops the socket; the hub closes the
    connection with 4008 past --max-buffered-bytes; the client reconnects and recovers, so
    once the application reads again it gets every message once, in order."""
    prefix = f"c{free_port()}:"
    hub = start_hub(
        "--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix,
        "--max-buffered-bytes", "65536", "--recovery-max-messages", "10000", *HISTORY,
    )  # fmt: skip
    total = 4000
    pad = "x" * 2000
    async with Client(hub.url(), queue_size=10, backoff_max_s=0.2) as client:
        sub = await client.subscribe("slow")
        async with history_publisher(redis_server.url, prefix) as publisher:
            for n in range(total):
                await publisher.apublish("slow", data={"n": n, "pad": pad})
        numbers: list[int] = []
        errors = await asyncio.wait_for(read_numbers(sub, numbers, total), t(60))
        assert client.num_connects >= 2  # it was cut off, and came back
    counts = count(numbers, range(total))
    assert counts.is_exact, counts
    assert not errors
