"""End to end: two ``hub serve`` instances and one redis-server, over real sockets."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import UNIT, HubProcess, RedisServer, async_wait_until, http, v1_hub
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

API_KEY = "test-key"
SECRET = "test-secret-that-is-long-enough-for-hs256"


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("v1")


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with RedisServer.running() as server:
        yield server


@pytest.fixture(scope="module")
def pair(tmp: Path, redis: RedisServer) -> Iterator[tuple[HubProcess, HubProcess]]:
    """Two instances sharing the Redis; the first serves the API."""
    api_args = ("--api-key", API_KEY, "--max-message-bytes", "4096")
    with v1_hub(tmp, redis.url, *api_args, api=True) as a, v1_hub(tmp, redis.url) as b:
        yield a, b


async def recv_json(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), UNIT))


async def request(ws: ClientConnection, **frame: Any) -> Any:
    await ws.send(json.dumps(frame))
    return await recv_json(ws)


async def v1(url: str, **kwargs: Any) -> ClientConnection:
    return await connect(url, subprotocols=["hub.v1"], open_timeout=UNIT, **kwargs)  # type: ignore[list-item]


async def subscribe_everywhere(redis_url: str, channel: str, num_processes: int) -> None:
    """Wait until ``num_processes`` hub processes are subscribed to ``channel`` in Redis."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    try:
        deadline = time.monotonic() + UNIT
        while time.monotonic() < deadline:
            [(_, count)] = await client.pubsub_numsub("hub:" + channel)
            if count >= num_processes:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{channel} never had {num_processes} subscribed processes")
    finally:
        await client.aclose()


async def test_v1_across_instances(pair: tuple[HubProcess, HubProcess], redis: RedisServer) -> None:
    """A hub.v1 publish on one instance reaches a hub.v1 subscriber on the other."""
    a, b = pair
    async with await v1(a.url()) as sub, await v1(b.url()) as pub:
        ack = await request(sub, op="subscribe", channels=["x1", "x2"], id=1)
        assert ack == {"type": "ack", "op": "subscribe", "id": 1, "channels": ["x1", "x2"]}
        await subscribe_everywhere(redis.url, "x2", 1)
        assert await request(pub, op="publish", channel="x2", data={"n": 1}, id="p") == {
            "type": "ack",
            "op": "publish",
            "id": "p",
        }
        msg = await recv_json(sub)
        assert msg == {"type": "message", "channel": "x2", "data": {"n": 1}}
        assert await request(sub, op="ping", id=9) == {"type": "ack", "op": "ping", "id": 9}
        await request(sub, op="unsubscribe", channel="x2", id=2)
        await request(pub, op="publish", channel="x2", text="gone", id=3)
        await request(pub, op="publish", channel="x1", text="here", id=4)
        assert (await recv_json(sub))["text"] == "here"  # x2's message never arrived


async def test_modes_share_channels(
    pair: tuple[HubProcess, HubProcess], redis: RedisServer
) -> None:
    """Text, binary and JSON payloads arrive intact in the other mode, across instances;
    a plain Redis PUBLISH reaches both."""
    a, b = pair
    async with await v1(a.url()) as v, connect(b.url("mix"), open_timeout=UNIT) as raw:
        await request(v, op="subscribe", channel="mix", id=1)
        await subscribe_everywhere(redis.url, "mix", 2)

        await raw.send("héllo")
        assert await recv_json(v) == {"type": "message", "channel": "mix", "text": "héllo"}
        assert await raw.recv() == "héllo"

        await raw.send(b"\x00\xffbin")
        got = await recv_json(v)
        assert base64.b64decode(got["binary"]) == b"\x00\xffbin"
        assert await raw.recv() == b"\x00\xffbin"

        await v.send(json.dumps({"op": "publish", "channel": "mix", "data": [1, "two"]}))
        frames = [await recv_json(v), await recv_json(v)]
        assert {"type": "message", "channel": "mix", "data": [1, "two"]} in frames
        assert json.loads(await raw.recv()) == [1, "two"]

        await v.send(b"mix\n\x01\x02\x03")  # binary frame: no ack
        assert base64.b64decode((await recv_json(v))["binary"]) == b"\x01\x02\x03"
        assert await raw.recv() == b"\x01\x02\x03"

        await v.send(json.dumps({"op": "publish", "channel": "mix", "binary": "AAEC"}))
        frames = [await recv_json(v), await recv_json(v)]
        assert any(f.get("binary") == "AAEC" for f in frames)
        assert await raw.recv() == b"\x00\x01\x02"

        out = await asyncio.to_thread(
            subprocess.run,
            ["redis-cli", "-p", str(redis.port), "PUBLISH", "hub:mix", "from redis"],
            capture_output=True,
            timeout=UNIT,
            check=True,
        )
        assert out.stdout.strip() == b"2"
        assert (await recv_json(v))["text"] == "from redis"
        assert await raw.recv() == "from redis"


async def test_request_errors_keep_the_connection_open(pair: tuple[HubProcess, HubProcess]) -> None:
    """Bad requests get error frames with stable codes; the connection stays usable."""
    a, _ = pair
    async with await v1(a.url()) as ws:
        await ws.send("not json")
        assert (await recv_json(ws))["code"] == "bad_json"
        got = await request(ws, op="fly", id=5)
        assert got["type"] == "error" and got["code"] == "unknown_op" and got["id"] == 5
        assert (await request(ws, op="subscribe", id=6))["code"] == "missing_field"
        assert (await request(ws, op="subscribe", channel="b d", id=7))["code"] == "bad_channel"
        await ws.send(b"no channel line")
        assert (await recv_json(ws))["code"] == "bad_binary_frame"
        assert (await request(ws, op="ping", id=8))["type"] == "ack"


async def test_subscription_limit(tmp: Path, redis: RedisServer) -> None:
    """Past --max-subscriptions, subscribe answers too_many_subscriptions."""
    with v1_hub(tmp, redis.url, "--max-subscriptions", "2") as hub:
        async with await v1(hub.url()) as ws:
            assert (await request(ws, op="subscribe", channels=["a", "b"], id=1))["type"] == "ack"
            got = await request(ws, op="subscribe", channel="c", id=2)
            assert got["code"] == "too_many_subscriptions" and got["id"] == 2
            assert (await request(ws, op="subscribe", channel="a", id=3))["type"] == "ack"


async def test_bad_subprotocol_is_refused(pair: tuple[HubProcess, HubProcess]) -> None:
    """A subprotocol other than hub.v1 gets HTTP 400 naming hub.v1."""
    a, _ = pair
    with pytest.raises(InvalidStatus) as info:
        await connect(a.url(), subprotocols=["chat"], open_timeout=UNIT)  # type: ignore[list-item]
    assert info.value.response.status_code == 400
    assert b"hub.v1" in info.value.response.body


async def test_http_api(pair: tuple[HubProcess, HubProcess], redis: RedisServer) -> None:
    """The API publishes JSON, text, binary and batches; refuses bad keys, input and size."""
    a, b = pair
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with await v1(b.url()) as ws:
        await request(ws, op="subscribe", channels=["api1", "api2"], id=1)
        await subscribe_everywhere(redis.url, "api2", 1)
        call = asyncio.to_thread

        status, body = await call(
            http, "POST", a.api_url + "/api/publish/api1", b'{"k": [1]}',
            {**auth, "Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 200 and body["published"] == 1
        assert await recv_json(ws) == {"type": "message", "channel": "api1", "data": {"k": [1]}}

        status, _ = await call(
            http, "POST", a.api_url + "/api/publish/api1", b"plain",
            {**auth, "Content-Type": "text/plain"},
        )  # fmt: skip
        assert status == 200 and (await recv_json(ws))["text"] == "plain"

        status, _ = await call(
            http, "POST", a.api_url + "/api/publish/api1", b"\x00\x01",
            {**auth, "Content-Type": "application/octet-stream"},
        )  # fmt: skip
        assert status == 200 and (await recv_json(ws))["binary"] == "AAE="

        batch = {"messages": [{"channel": "api1", "text": "t"}, {"channel": "api2", "data": 2}]}
        status, body = await call(
            http, "POST", a.api_url + "/api/publish", json.dumps(batch).encode(),
            {**auth, "Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 200 and body == {"published": 2}
        got = {json.dumps(await recv_json(ws)), json.dumps(await recv_json(ws))}
        assert json.dumps({"type": "message", "channel": "api2", "data": 2}) in got

        status, body = await call(http, "GET", a.api_url + "/api/channels", None, auth)
        assert status == 200 and body["scope"] == "cluster"
        assert {"api1", "api2"} <= {row["channel"] for row in body["channels"]}

    status, body = await asyncio.to_thread(
        http, "POST", a.api_url + "/api/publish/api1", b"x", {"Authorization": "Bearer wrong"}
    )
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await asyncio.to_thread(
        http, "POST", a.api_url + "/api/publish/api1", b"{",
        {**auth, "Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 400 and body["error"]["code"] == "bad_json"
    status, body = await asyncio.to_thread(
        http, "POST", a.api_url + "/api/publish/bad%20name", b"x",
        {**auth, "Content-Type": "text/plain"},
    )  # fmt: skip
    assert status == 400 and body["error"]["code"] == "bad_channel"
    status, body = await asyncio.to_thread(
        http, "POST", a.api_url + "/api/publish", b'{"messages": [{"channel": "a"}]}',
        {**auth, "Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 400 and body["error"]["code"] == "missing_field"
    status, body = await asyncio.to_thread(
        http, "POST", a.api_url + "/api/publish/big", b"x" * 5000,
        {**auth, "Content-Type": "text/plain"},
    )  # fmt: skip
    assert status == 413 and body["error"]["code"] == "too_large"
    status, body = await asyncio.to_thread(http, "GET", a.api_url + "/api/nothing", None, auth)
    assert status == 404


async def test_publish_command(pair: tuple[HubProcess, HubProcess], redis: RedisServer) -> None:
    """``hub publish`` works through Redis and through the API."""
    a, _ = pair
    async with await v1(a.url()) as ws:
        await request(ws, op="subscribe", channel="cli", id=1)
        await subscribe_everywhere(redis.url, "cli", 1)
        cmd = [sys.executable, "-m", "hub", "publish", "cli"]
        await asyncio.to_thread(
            subprocess.run,
            [*cmd, '{"via": "redis"}', "--kind", "json", "--redis", redis.url],
            check=True,
            timeout=UNIT * 2,
        )
        assert (await recv_json(ws))["data"] == {"via": "redis"}
        await asyncio.to_thread(
            subprocess.run,
            [*cmd, "via api", "--api", a.api_url, "--api-key", API_KEY],
            check=True,
            timeout=UNIT * 2,
        )
        assert (await recv_json(ws))["text"] == "via api"


def test_api_refuses_a_public_address_without_a_key(redis: RedisServer) -> None:
    """--api-host on a non-loopback address without --api-key exits with a clear message."""
    out = subprocess.run(
        [sys.executable, "-m", "hub", "serve", "--redis", redis.url, "--workers", "1",
         "--api-port", "18999", "--api-host", "0.0.0.0"],
        capture_output=True, text=True, timeout=UNIT * 2,
    )  # fmt: skip
    assert out.returncode == 2
    assert "HUB_API_KEY" in out.stderr and "non-loopback" in out.stderr


# Access control


def token(**claims: Any) -> str:
    claims.setdefault("sub", "alice")
    claims.setdefault("exp", int(time.time()) + 60)
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def secured(tmp: Path, redis: RedisServer) -> Iterator[HubProcess]:
    with v1_hub(
        tmp, redis.url, "--jwt-secret", SECRET, "--allowed-origins", "https://good.example"
    ) as hub:
        yield hub


async def status_of(url: str, **kwargs: Any) -> int:
    try:
        async with connect(url, open_timeout=UNIT, **kwargs):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_jwt_at_the_handshake(secured: HubProcess) -> None:
    """Raw mode: 401 without/with a bad or expired token, 403 for a channel not granted."""
    url = secured.url("room.1")
    good = token(channels=["room.*"])
    assert await status_of(url) == 401
    assert await status_of(url + "?token=" + good) == 101
    assert await status_of(url, additional_headers={"Authorization": f"Bearer {good}"}) == 101
    expired = token(channels=["room.*"], exp=int(time.time()) - 10)
    assert await status_of(url + "?token=" + expired) == 401
    forged = jwt.encode({"channels": ["*"]}, "another-secret-that-is-long-enough!", "HS256")
    assert await status_of(url + "?token=" + forged) == 401
    assert await status_of(secured.url("other?token=") + good) == 403


async def test_jwt_per_operation_in_v1(secured: HubProcess) -> None:
    """hub.v1 checks each operation against the token's subscribe and publish patterns."""
    tok = token(subscribe=["news.*"], publish=["chat.*"])
    async with await v1(secured.url(), additional_headers={"Authorization": f"Bearer {tok}"}) as ws:
        assert (await request(ws, op="subscribe", channel="news.a", id=1))["type"] == "ack"
        got = await request(ws, op="subscribe", channel="chat.a", id=2)
        assert got["code"] == "forbidden" and got["id"] == 2
        assert (await request(ws, op="publish", channel="chat.a", text="x", id=3))["type"] == "ack"
        assert (await request(ws, op="publish", channel="news.a", text="x", id=4))[
            "code"
        ] == "forbidden"


async def test_raw_publish_without_the_right_closes_1008(secured: HubProcess) -> None:
    """A raw client whose token may only subscribe is closed with 1008 when it sends."""
    tok = token(subscribe=["ro"])
    async with connect(secured.url("ro?token=") + tok, open_timeout=UNIT) as ws:
        await ws.send("x")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), UNIT)
        assert ws.close_code == 1008


async def test_token_expiry_closes_4001(secured: HubProcess) -> None:
    """A connection is closed with 4001 when its token expires."""
    tok = token(channels=["*"], exp=int(time.time()) + 2)
    async with connect(secured.url("exp?token=") + tok, open_timeout=UNIT) as raw:
        async with await v1(
            secured.url(), additional_headers={"Authorization": f"Bearer {tok}"}
        ) as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 3 + UNIT)
            assert ws.close_code == 4001
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(raw.recv(), UNIT)
        assert raw.close_code == 4001


async def test_origin_check(secured: HubProcess) -> None:
    """--allowed-origins refuses other browser origins with 403."""
    url = secured.url("room.1?token=") + token(channels=["*"])
    assert await status_of(url, origin="https://evil.example") == 403  # type: ignore[arg-type]
    assert await status_of(url, origin="https://good.example") == 101  # type: ignore[arg-type]


# Limits


@pytest.fixture(scope="module")
def limited(tmp: Path, redis: RedisServer) -> Iterator[HubProcess]:
    with v1_hub(
        tmp, redis.url, "--publish-rate", "1", "--publish-burst", "3", "--max-connections", "3"
    ) as hub:
        yield hub


async def test_rate_limit(limited: HubProcess) -> None:
    """Past the burst, hub.v1 gets rate_limited errors and raw mode is closed with 1008."""
    async with await v1(limited.url()) as ws:
        codes = [
            (await request(ws, op="publish", channel="r", text="x", id=i)).get("code")
            for i in range(5)
        ]
        assert codes[:3] == [None, None, None] and "rate_limited" in codes[3:]
    async with connect(limited.url("r"), open_timeout=UNIT) as raw:
        for _ in range(10):
            try:
                await raw.send("x")
            except ConnectionClosed:
                break
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(raw.recv(), UNIT)
        assert raw.close_code == 1008

    def rate_limited_drops() -> float:
        with urllib.request.urlopen(limited.base_url + "/metrics", timeout=UNIT) as r:
            text = r.read().decode()
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "hub_messages_dropped_total" and s.labels.get("reason") == "rate_limited"
        )

    # Both modes are counted: at least one v1 refusal and the raw client's refused frame.
    await async_wait_until(lambda: rate_limited_drops() >= 2, 10, "the rate_limited counter")


async def test_max_connections(limited: HubProcess) -> None:
    """Past --max-connections new handshakes get 503; the others keep working."""
    conns: list[ClientConnection] = []
    try:
        for _ in range(3):
            conns.append(await v1(limited.url()))
        for ws in conns:  # wait until the server counts them all
            await request(ws, op="ping", id=0)
        assert await status_of(limited.url("m")) == 503
        assert (await request(conns[0], op="ping", id=1))["type"] == "ack"
    finally:
        for ws in conns:
            await ws.close()


async def test_compressed_v1_deliveries(tmp: Path, redis: RedisServer) -> None:
    """With --compression, a hub.v1 client that negotiated permessage-deflate gets the same
    JSON deliveries as an uncompressed one (each compressed connection encodes its own)."""
    with v1_hub(tmp, redis.url, "--compression") as hub:
        async with await v1(hub.url()) as z, await v1(hub.url(), compression=None) as plain:
            assert z.protocol.extensions and not plain.protocol.extensions
            for ws in (z, plain):
                await request(ws, op="subscribe", channel="zip", id=1)
            await plain.send(json.dumps({"op": "publish", "channel": "zip", "data": {"n": 1}}))
            want = {"type": "message", "channel": "zip", "data": {"n": 1}}
            assert await recv_json(z) == want
            frames = [await recv_json(plain), await recv_json(plain)]
            assert want in frames
