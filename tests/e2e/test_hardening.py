"""Bad input harms no one else: reproductions of an adversarial pass, over real processes.

Each is bounded in count and time, and each checks the hub's log for tracebacks.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from support import HubProcess, RedisServer, free_port, recv_n, scrape, t, total, wait_until
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

StartHub = Callable[..., HubProcess]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def raw_request(port: int, head: str, timeout: float = 5) -> tuple[int, str]:
    """Send a raw HTTP request head; (status, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), t(timeout)) as sock:
        sock.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        head_bytes, _, body = data.partition(b"\r\n\r\n")
        try:
            body += sock.recv(4096)
        except OSError:
            pass
    return int(head_bytes.split(b" ", 2)[1]), body.decode(errors="replace")


def upgrade_head(port: int, path: str = "/room", extra: str = "") -> str:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    )


def assert_no_traceback(hub: HubProcess) -> None:
    assert "Traceback" not in hub.output(), hub.output()[-3000:]


def _ping_flood(port: int, count: int) -> tuple[bool, int]:
    """Send ``count`` masked 125-byte pings and read nothing: (cut off by the hub?, sent)."""
    ping = bytes((0x89, 0x80 | 125)) + b"mask" + os.urandom(125)
    burst = ping * 500
    sent = 0
    with socket.create_connection(("127.0.0.1", port), t(5)) as sock:
        sock.sendall(upgrade_head(port, "/flood").encode())
        assert b" 101 " in sock.recv(4096)
        sock.settimeout(t(10))
        try:
            while sent < count:
                sock.sendall(burst)
                sent += len(burst) // len(ping)
        except OSError:
            return True, sent
    return False, sent


async def test_a_ping_flood_that_never_reads_is_cut_off(start_hub: StartHub) -> None:
    """Pongs count toward --max-buffered-bytes: a client that pings and never reads is cut off,
    the hub's memory stays bounded, and a neighbour is served throughout."""
    hub = start_hub("--workers", "1", "--max-buffered-bytes", "262144", "--ping-interval-s", "0")
    pid = hub.proc.pid
    async with connect(hub.url("calm")) as neighbour:
        rss_before = rss_bytes(pid)
        cut_off, sent = await asyncio.to_thread(_ping_flood, hub.port, 1_000_000)
        assert cut_off, f"the hub never cut off a client that sent {sent} pings and read none"
        assert rss_bytes(pid) - rss_before < 40 * 1024 * 1024
        await neighbour.send("still here")
        assert await recv_n(neighbour, 1) == ["still here"]
    samples = await scrape(hub.port)
    assert total(samples, "hub_ws_slow_consumer_disconnects_total") >= 1
    assert_no_traceback(hub)


@pytest.fixture
def v1_and_redis(
    redis_server: RedisServer, start_hub: StartHub
) -> Iterator[tuple[HubProcess, str]]:
    prefix = f"bad{free_port()}:"
    yield (
        start_hub("--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix),
        prefix,
    )


async def test_a_bad_payload_in_redis_harms_no_subscriber(
    redis_server: RedisServer, v1_and_redis: tuple[HubProcess, str]
) -> None:
    """Malformed JSON envelopes reach raw and hub.v1 subscribers as binary messages; nobody
    is disconnected, no frame a hub.v1 client gets is anything but a delivery, and the next
    good message arrives."""
    hub, prefix = v1_and_redis
    bad = [b'\xffhbj"\xc3\x28"', b"\xffhbj{bad", b'\xffhbj1,"type":"ack","id":1}']
    async with (
        connect(hub.url("ch")) as raw,
        connect(hub.url(), subprotocols=["hub.v1"]) as v1,  # type: ignore[list-item]
    ):
        await v1.send(json.dumps({"op": "subscribe", "channel": "ch", "id": 1}))
        assert json.loads(await asyncio.wait_for(v1.recv(), t(5)))["type"] == "ack"
        client = redis_server.client()
        for payload in bad:
            client.publish(prefix + "ch", payload)
        client.publish(prefix + "ch", b'\xffhbj{"ok":true}')
        raw_got = await recv_n(raw, 4)
        assert raw_got[:3] == bad and raw_got[3] == '{"ok":true}'
        frames = [json.loads(f) for f in await recv_n(v1, 4)]
        assert [f["type"] for f in frames] == ["message"] * 4
        assert [base64.b64decode(f["binary"]) for f in frames[:3]] == bad
        assert frames[3]["data"] == {"ok": True}
    assert_no_traceback(hub)


async def test_odd_handshakes_get_400_with_a_reason(start_hub: StartHub) -> None:
    """A second Upgrade, Origin or Authorization header is refused with 400, no traceback."""
    hub = start_hub("--workers", "1")
    for extra, name in (
        ("Upgrade: h2c\r\n", "Upgrade"),
        ("Origin: https://a.example\r\nOrigin: https://b.example\r\n", "Origin"),
        ("Authorization: Bearer a\r\nAuthorization: Bearer b\r\n", "Authorization"),
    ):
        status, body = raw_request(hub.port, upgrade_head(hub.port, extra=extra))
        assert status == 400 and name in body, (status, body)
    async with connect(hub.url("room")) as ok:  # the hub serves on
        await ok.send("x")
        assert await recv_n(ok, 1) == ["x"]
    assert_no_traceback(hub)


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


async def test_tokens_of_another_key_type_get_401(start_hub: StartHub, tmp_path: Path) -> None:
    """An ES256 token, or one with an embedded jwk header, sent to an RSA-keyed hub: 401."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "rsa.pem"
    pem.write_text(_public_pem(key))
    hub = start_hub("--workers", "1", "--jwt-public-key", str(pem))
    claims = {"sub": "x", "channels": ["*"]}
    es = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    jwk_header = jwt.encode(
        claims, key, algorithm="RS256", headers={"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}
    )
    hs = jwt.encode(claims, "a-secret-that-is-long-enough-for-hs256!", algorithm="HS256")
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = attacker.public_key().public_numbers()
    own_jwk = {
        "kty": "RSA",
        "n": base64.urlsafe_b64encode(numbers.n.to_bytes(256, "big")).rstrip(b"=").decode(),
        "e": "AQAB",
    }
    forged = jwt.encode(claims, attacker, algorithm="RS256", headers={"jwk": own_jwk})
    for token in (es, hs, forged):
        with pytest.raises(InvalidStatus) as info:
            async with connect(hub.url(f"room?token={token}")):
                pass
        assert info.value.response.status_code == 401
        assert b"invalid token" in info.value.response.body
    async with connect(hub.url(f"room?token={jwk_header}")):
        pass  # signed by the right key: the jwk header is ignored, never trusted
    assert_no_traceback(hub)


async def test_a_numeric_string_exp_closes_with_4001_at_expiry(start_hub: StartHub) -> None:
    secret = "a-secret-that-is-long-enough-for-hs256!"
    hub = start_hub("--workers", "1", "--jwt-secret", secret)
    token = jwt.encode(
        {"channels": ["*"], "exp": str(int(time.time()) + 3)}, secret, algorithm="HS256"
    )
    async with connect(hub.url(f"room?token={token}")) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), t(10))
    assert info.value.rcvd is not None and info.value.rcvd.code == 4001
    assert_no_traceback(hub)


async def test_ordinary_disconnects_log_no_traceback(start_hub: StartHub) -> None:
    """hub.v1 connections that end with a TCP reset or the client's 1011 log no traceback."""
    hub = start_hub("--workers", "1")
    for _ in range(30):
        ws = await connect(hub.url(), subprotocols=["hub.v1"])  # type: ignore[list-item]
        await ws.send(json.dumps({"op": "subscribe", "channel": "r", "id": 1}))
        await asyncio.wait_for(ws.recv(), t(5))
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.transport.abort()
    for _ in range(10):
        async with connect(hub.url(), subprotocols=["hub.v1"]) as ws:  # type: ignore[list-item]
            await ws.close(1011, "client bug")
    async with connect(hub.url("r")) as ok:
        await ok.send("alive")
        assert await recv_n(ok, 1) == ["alive"]
    assert_no_traceback(hub)


async def test_half_open_handshakes_count_against_max_connections(start_hub: StartHub) -> None:
    """Slowloris sockets take their place in --max-connections: a complete handshake beyond
    the limit gets 503, and once they are gone a client connects again."""
    hub = start_hub("--workers", "1", "--max-connections", "20")
    slow = []
    for _ in range(25):
        sock = socket.create_connection(("127.0.0.1", hub.port), t(5))
        sock.sendall(b"GET /room HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        slow.append(sock)
    await asyncio.sleep(0.3)
    with pytest.raises(InvalidStatus) as info:
        async with connect(hub.url("room")):
            pass
    assert info.value.response.status_code == 503
    for sock in slow:
        sock.close()
    wait_until(lambda: hub.is_serving(), 10, "the hub to answer")
    async with connect(hub.url("room")) as ws:
        await ws.send("in")
        assert await recv_n(ws, 1) == ["in"]
    assert_no_traceback(hub)
