"""Backend hooks end to end: two ``hub serve`` instances, one redis-server, and the worked
example backend (``examples/backend.py``, a real aiohttp process) answering every hook and
serving a rotating JWT key set."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import UNIT, HubProcess, RedisServer, free_port, v1_hub
from support.waits import ROOT, clean_env, stop_process, wait_until
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

API_KEY = "hooks-key"
CONFIG = """
[[namespaces]]
pattern = "room.*"
proxy_subscribe = true

[[namespaces]]
pattern = "chat.*"
proxy_publish = true
"""


class Backend:
    """examples/backend.py as a process on a free port; stop it and start it again there."""

    def __init__(self, ttl_s: float = 3600.0) -> None:
        self.port = free_port()
        self.ttl_s = ttl_s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Backend:
        argv = [sys.executable, str(ROOT / "examples" / "backend.py"), "--port", str(self.port)]
        self.proc = subprocess.Popen([*argv, "--ttl-s", str(self.ttl_s)], env=clean_env())

        def up() -> bool:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            return False

        wait_until(up, 10, "the example backend")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 5)
            self.proc = None

    def hook_args(self) -> tuple[str, ...]:
        u = self.url
        return (
            *("--proxy-connect-url", f"{u}/hooks/connect"),
            *("--proxy-subscribe-url", f"{u}/hooks/subscribe"),
            *("--proxy-publish-url", f"{u}/hooks/publish"),
            *("--proxy-rpc-url", f"{u}/hooks/rpc"),
            *("--proxy-refresh-url", f"{u}/hooks/refresh"),
            *("--proxy-header", "Cookie", "--proxy-timeout-s", "1"),
            *("--jwt-jwks-url", f"{u}/jwks"),
        )

    def token(self, sub: str, ttl_s: float = 3600) -> str:
        url = f"{self.url}/token?sub={sub}&ttl_s={ttl_s}"
        with urllib.request.urlopen(url, timeout=UNIT) as response:
            return str(response.read().decode())

    def rotate(self) -> str:
        request = urllib.request.Request(f"{self.url}/rotate", method="POST")
        with urllib.request.urlopen(request, timeout=UNIT) as response:
            return str(json.loads(response.read())["kid"])


@contextlib.contextmanager
def backend(ttl_s: float = 3600.0) -> Iterator[Backend]:
    b = Backend(ttl_s).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hooks")
    (path / "hooks.toml").write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with RedisServer.running() as server:
        yield server


@pytest.fixture(scope="module")
def app_backend() -> Iterator[Backend]:
    # Hook-connected connections live 4 s; the refresh hook extends them.
    with backend(ttl_s=4.0) as b:
        yield b


def hub_args(tmp: Path, b: Backend) -> tuple[str, ...]:
    return (*b.hook_args(), "--config", str(tmp / "hooks.toml"), "--api-key", API_KEY)


@pytest.fixture(scope="module")
def pair(
    tmp: Path, redis: RedisServer, app_backend: Backend
) -> Iterator[tuple[HubProcess, HubProcess]]:
    args = hub_args(tmp, app_backend)
    with v1_hub(tmp, redis.url, *args, api=True) as a, v1_hub(tmp, redis.url, *args) as b:
        yield a, b


async def recv_json(ws: ClientConnection, timeout: float = UNIT) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def request(ws: ClientConnection, **frame: Any) -> Any:
    await ws.send(json.dumps(frame))
    return await recv_json(ws)


async def as_user(hub: HubProcess, user: str, **kwargs: Any) -> ClientConnection:
    """A hub.v1 connection with the session cookie of ``user`` and no JWT."""
    headers = {"Cookie": f"theme=dark; session={user}"}
    ws = await connect(
        hub.url(),
        subprotocols=["hub.v1"],  # type: ignore[list-item]
        additional_headers=headers,
        open_timeout=UNIT,
        **kwargs,
    )
    connected = await recv_json(ws)
    assert connected["type"] == "connected" and connected["user"] == user
    subscribed = await recv_json(ws)
    assert subscribed == {"type": "subscribed", "channels": [f"personal.{user}"], "server": True}
    return ws


def api_publish(hub: HubProcess, channel: str, data: Any) -> None:
    request = urllib.request.Request(
        f"{hub.api_url}/api/publish/{channel}",
        data=json.dumps(data).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=UNIT) as response:
        assert response.status in (200, 202, 204)


async def test_a_cookie_connects_through_the_hook_with_server_side_channels(
    pair: tuple[HubProcess, HubProcess],
) -> None:
    a, _ = pair
    headers = {"Cookie": "session=bob"}
    ws = await connect(a.url(), subprotocols=["hub.v1"], additional_headers=headers)  # type: ignore[list-item]
    async with ws:
        connected = await recv_json(ws)
        assert connected["type"] == "connected" and connected["user"] == "bob"
        assert connected["data"] == {"greeting": "hello bob", "transport": "ws"}
        assert connected["expire_at"] > time.time()
        assert await recv_json(ws) == {
            "type": "subscribed",
            "channels": ["personal.bob"],
            "server": True,
        }
        api_publish(a, "personal.bob", {"hi": 1})
        frame = await recv_json(ws)
        assert frame["channel"] == "personal.bob" and frame["data"] == {"hi": 1}
        # The hook's grant: news.* may be subscribed to, other channels may not.
        ack = await request(ws, op="subscribe", channel="news.1", id=1)
        assert ack["type"] == "ack"
        refused = await request(ws, op="subscribe", channel="other", id=2)
        assert refused["code"] == "forbidden"


async def test_the_connect_hook_refuses_with_401_or_403(
    pair: tuple[HubProcess, HubProcess],
) -> None:
    a, _ = pair
    with pytest.raises(InvalidStatus) as no_cookie:
        await connect(a.url(), subprotocols=["hub.v1"], open_timeout=UNIT)  # type: ignore[list-item]
    assert no_cookie.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as banned:
        await connect(
            a.url(),
            subprotocols=["hub.v1"],  # type: ignore[list-item]
            additional_headers={"Cookie": "session=banned"},
            open_timeout=UNIT,
        )
    assert banned.value.response.status_code == 403
    assert b"banned" in banned.value.response.body


async def test_a_subscribe_the_hook_refuses_is_an_error_frame(
    pair: tuple[HubProcess, HubProcess],
) -> None:
    a, _ = pair
    async with await as_user(a, "bob") as bob, await as_user(a, "alice") as alice:
        refused = await request(bob, op="subscribe", channel="room.vip", id=1)
        assert refused == {
            "type": "error",
            "id": 1,
            "code": "refused",
            "message": "room.vip is for its members only",
            "app_code": "not_a_member",
        }
        assert (await request(bob, op="ping", id=2))["type"] == "ack"  # still connected
        assert (await request(alice, op="subscribe", channel="room.vip", id=3))["type"] == "ack"
        # A raw URL of a proxy_subscribe channel is checked at the handshake.
        with pytest.raises(InvalidStatus) as raw:
            await connect(
                a.url("room.vip"), additional_headers={"Cookie": "session=bob"}, open_timeout=UNIT
            )
        assert raw.value.response.status_code == 403


async def test_the_publish_hook_replaces_the_data_on_both_instances(
    pair: tuple[HubProcess, HubProcess],
) -> None:
    a, b = pair
    async with (
        await as_user(a, "bob") as bob,
        await as_user(a, "alice") as alice,
        await as_user(b, "carol") as carol,
    ):
        for ws in (bob, alice, carol):
            assert (await request(ws, op="subscribe", channel="chat.1", id=1))["type"] == "ack"
        await asyncio.sleep(0.2)  # both instances subscribed in Redis
        ack = await request(bob, op="publish", channel="chat.1", data={"text": "hi"}, id=2)
        replaced = {"text": "hi", "by": "bob"}
        assert ack == {"type": "ack", "op": "publish", "id": 2}
        assert (await recv_json(bob))["data"] == replaced
        assert (await recv_json(alice))["data"] == replaced
        assert (await recv_json(carol))["data"] == replaced
        spam = await request(bob, op="publish", channel="chat.1", data={"text": "spam!"}, id=3)
        assert spam["code"] == "refused" and spam["app_code"] == "spam"
        assert (await request(carol, op="ping", id=4))["type"] == "ack"  # nothing else came


async def test_rpc_round_trip_and_refusal(pair: tuple[HubProcess, HubProcess]) -> None:
    a, _ = pair
    async with await as_user(a, "bob") as bob:
        answer = await request(bob, op="rpc", method="whoami", id=1)
        assert answer == {"type": "rpc", "id": 1, "result": {"user": "bob"}}
        echo = await request(bob, op="rpc", method="echo", params={"n": [1, 2]}, id=2)
        assert echo["result"] == {"n": [1, 2]}
        refused = await request(bob, op="rpc", method="nope", id=3)
        assert refused["code"] == "refused" and refused["app_code"] == "unknown_method"


async def test_the_refresh_hook_extends_a_hook_connected_connection(
    pair: tuple[HubProcess, HubProcess],
) -> None:
    a, _ = pair
    async with await as_user(a, "bob") as bob, await as_user(a, "shortlived") as short:
        # 4 s of life each; the refresh hook extends bob's, and refuses shortlived's.
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(short.recv(), UNIT * 2)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        assert (await request(bob, op="ping", id=1))["type"] == "ack"  # past its first expiry


async def test_an_in_band_refresh_extends_a_jwt_connection(
    pair: tuple[HubProcess, HubProcess], app_backend: Backend
) -> None:
    a, _ = pair
    first = app_backend.token("dana", ttl_s=3)
    ws = await connect(
        a.url(),
        subprotocols=["hub.v1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {first}"},
        open_timeout=UNIT,
    )
    async with ws:
        assert (await request(ws, op="subscribe", channel="news.9", id=1))["type"] == "ack"
        other = await request(ws, op="refresh", token=app_backend.token("eve"), id=2)
        assert other["code"] == "bad_token"  # another user
        ack = await request(ws, op="refresh", token=app_backend.token("dana", ttl_s=60), id=3)
        assert ack["type"] == "ack" and ack["op"] == "refresh" and ack["expire_at"] > time.time()
        await asyncio.sleep(4)  # past the first token's exp
        assert (await request(ws, op="ping", id=4))["type"] == "ack"
        api_publish(a, "news.9", "still here")
        assert (await recv_json(ws))["data"] == "still here"


async def test_a_stopped_backend_gives_1013_and_connected_clients_keep_receiving(
    tmp: Path, redis: RedisServer
) -> None:
    with backend() as b, v1_hub(tmp, redis.url, *hub_args(tmp, b), api=True) as hub:
        async with await as_user(hub, "bob") as bob:
            b.stop()
            started = time.monotonic()
            ws = await connect(
                hub.url(),
                subprotocols=["hub.v1"],  # type: ignore[list-item]
                additional_headers={"Cookie": "session=bob"},
                open_timeout=UNIT,
            )
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), UNIT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            assert time.monotonic() - started < 1 + UNIT  # --proxy-timeout-s 1
            # The others: a request through a hook fails, the rest goes on.
            refused = await request(bob, op="subscribe", channel="room.x", id=1)
            assert refused["code"] == "unavailable"
            api_publish(hub, "personal.bob", "delivered")
            assert (await recv_json(bob))["data"] == "delivered"
            status, metrics = hub.http("/metrics")
            assert status == 200
            assert 'hub_hook_errors_total{hook="connect",worker="0"} 1.0' in metrics
            assert 'hub_hook_calls_total{hook="connect",worker="0"} 2.0' in metrics
            assert 'hub_hook_duration_seconds_count{hook="subscribe",worker="0"}' in metrics


async def test_a_jwks_key_rotates_and_a_failed_fetch_keeps_the_keys(
    tmp: Path, redis: RedisServer
) -> None:
    # The key set only (no connect hook to fall back on): an unknown key is a plain 401.
    with backend() as b, v1_hub(tmp, redis.url, "--jwt-jwks-url", f"{b.url}/jwks") as hub:

        async def connects(token: str) -> bool:
            try:
                ws = await connect(
                    hub.url(),
                    subprotocols=["hub.v1"],  # type: ignore[list-item]
                    additional_headers={"Authorization": f"Bearer {token}"},
                    open_timeout=UNIT,
                )
            except InvalidStatus as exc:
                assert exc.response.status_code == 401
                return False
            async with ws:
                return (await request(ws, op="ping", id=1))["type"] == "ack"

        old = b.token("fred")
        assert await connects(old)
        b.rotate()
        new = b.token("fred")
        # An unknown kid refetches the set (at most once per 10 s since the last fetch).
        deadline = time.monotonic() + 15
        while not await connects(new):
            assert time.monotonic() < deadline, "the rotated key was never fetched"
            await asyncio.sleep(0.5)
        assert await connects(old)  # the previous key is still in the set
        b.rotate()
        newer = b.token("fred")
        b.stop()
        # The newest key cannot be fetched now; a failed fetch keeps the keys known.
        deadline = time.monotonic() + 15
        while "cannot fetch the key set" not in hub.output():
            assert not await connects(newer)
            assert time.monotonic() < deadline, "no failed fetch was logged"
            await asyncio.sleep(0.5)
        assert await connects(new) and await connects(old)


async def test_the_python_client_calls_rpc_with_a_key_set_token(
    pair: tuple[HubProcess, HubProcess], app_backend: Backend
) -> None:
    from hub.client import Client, RequestRefused

    a, _ = pair
    async with Client(a.url(), token=app_backend.token("gina")) as client:
        assert await asyncio.wait_for(client.rpc("whoami"), UNIT) == {"user": "gina"}
        with pytest.raises(RequestRefused) as refused:
            await client.rpc("nope")
        assert refused.value.code == "refused"


async def test_the_python_client_gets_its_session_and_server_side_channels(
    pair: tuple[HubProcess, HubProcess],
) -> None:
    """hub.client with a session cookie and no JWT: the connect hook's answer is
    ``client.session``, and its server-side channel arrives as a Subscription."""
    from hub.client import Client

    a, _ = pair
    async with Client(a.url(), headers={"Cookie": "session=carol"}) as client:
        subs = client.server_subscriptions()
        sub = await asyncio.wait_for(anext(aiter(subs)), UNIT)
        assert sub.server and sub.channel == "personal.carol"
        assert client.session is not None and client.session.user == "carol"
        assert client.session.data == {"greeting": "hello carol", "transport": "ws"}
        api_publish(a, "personal.carol", {"n": 1})
        message = await asyncio.wait_for(anext(aiter(sub)), UNIT)
        assert message.data == {"n": 1}
