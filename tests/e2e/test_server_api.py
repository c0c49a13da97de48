"""The server API over two real hub instances and a real redis-server (and a Redis Cluster):
each call acts on a user's connections on every instance, through the control channel, and
answers with the count it reached; personal channels are their user's alone."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from support import HubProcess, RedisServer, free_port, http, t
from support.cluster import RedisCluster
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hub.client import Client

SECRET = "server-api-test-secret-that-is-long-enough"
KEY = "server-api-key"
HISTORY = ("--history-size", "100", "--history-ttl-s", "600")


def token(user: str | None, **claims: Any) -> str:
    body: dict[str, Any] = {"exp": int(time.time()) + 600, **claims}
    if user is not None:
        body["sub"] = user
    return jwt.encode(body, SECRET, algorithm="HS256")


def hub_args(redis_url: str, *extra: str) -> tuple[str, ...]:
    return (
        "--redis", redis_url, "--workers", "1", "--channel-prefix", f"u{free_port()}:",
        "--jwt-secret", SECRET, "--api-key", KEY, "--unsubscribe-delay-s", "0.2", *extra,
    )  # fmt: skip


async def api(hub: HubProcess, method: str, path: str, body: object = None) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    return await asyncio.to_thread(http, method, hub.api_url + path, data, headers)


async def v1(hub: HubProcess, user: str | None, **claims: Any) -> ClientConnection:
    return await connect(
        hub.url(f"?token={token(user, **claims)}"),
        subprotocols=["hub.v1"],  # type: ignore[list-item]
    )


async def request(ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(frame))
    while True:
        answer: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), t(5)))
        if answer.get("id") == frame.get("id"):
            return answer


async def next_frame(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), t(5)))
    return frame


async def closed_with(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), t(5))
    return ws.close_code


@pytest.fixture
def pair(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> tuple[HubProcess, HubProcess]:
    args = hub_args(redis_server.url, *HISTORY)
    return start_hub(*args, api=True), start_hub(*args, api=True)


async def test_disconnect_closes_a_users_connections_on_both_instances(
    pair: tuple[HubProcess, HubProcess],
) -> None:
    a, b = pair
    alice_a, alice_b = await v1(a, "alice"), await v1(b, "alice")
    alice_raw = await connect(b.url(f"news?token={token('alice', channels='*')}"))
    bob = await v1(a, "bob")
    status, body = await api(a, "POST", "/api/disconnect", {"user": "alice"})
    assert status == 200, body
    assert body == {"user": "alice", "count": 3, "instances": 2, "missing": []}
    for ws in (alice_a, alice_b, alice_raw):
        assert await closed_with(ws) == 4009
    assert (await request(bob, {"op": "ping", "id": 1}))["type"] == "ack"
    status, body = await api(
        b, "POST", "/api/disconnect", {"user": "bob", "code": 4100, "reason": "bye"}
    )
    assert (status, body["count"]) == (200, 1)
    assert await closed_with(bob) == 4100 and bob.close_reason == "bye"
    # Nobody left: count 0, not 404.
    assert (await api(a, "POST", "/api/disconnect", {"user": "alice"}))[1]["count"] == 0


async def test_server_side_subscribe_users_info_unsubscribe_and_history_delete(
    pair: tuple[HubProcess, HubProcess],
) -> None:
    """A server-side subscribe reaches alice on both instances (the Python client delivers
    it as a Subscription); /api/users and /api/info show it; /api/unsubscribe ends it; a
    deleted history starts a new epoch."""
    a, b = pair
    raw_ws = await v1(b, "alice")
    async with Client(a.url(), token=token("alice")) as client:
        await client.wait_connected()
        status, body = await api(a, "POST", "/api/subscribe", {"user": "alice", "channel": "feed"})
        assert (status, body["count"], body["instances"]) == (200, 2, 2), body
        frame = await next_frame(raw_ws)
        assert frame["type"] == "subscribed" and frame["server"] is True
        assert frame["channels"] == ["feed"]
        assert frame["positions"]["feed"]["offset"] == 0
        sub = await asyncio.wait_for(anext(aiter(client.server_subscriptions())), t(5))
        assert sub.channel == "feed" and sub.server
        status, _ = await api(b, "POST", "/api/publish/feed", {"n": 1})
        assert status == 200
        message = await asyncio.wait_for(anext(sub), t(5))
        assert message.data == {"n": 1} and message.offset == 1
        assert (await next_frame(raw_ws))["data"] == {"n": 1}

        status, users = await api(b, "GET", "/api/users/alice")
        assert status == 200 and users["user"] == "alice" and users["count"] == 2
        assert users["missing"] == [] and len(users["instances"]) == 2
        connections = [c for i in users["instances"] for c in i["connections"]]
        assert all(c["channels"] == ["feed"] and c["transport"] == "hub.v1" for c in connections)

        status, info = await api(a, "GET", "/api/info")
        assert status == 200 and info["missing"] == [] and len(info["instances"]) == 2
        for instance in info["instances"]:
            assert instance["connections"] == 1 and instance["users"] == 1
            assert instance["channels"] == 1 and instance["version"]
            assert instance["uptime_s"] >= 0 and instance["instance"]

        status, body = await api(
            a, "POST", "/api/unsubscribe", {"user": "alice", "channel": "feed"}
        )
        assert (status, body["count"]) == (200, 2)
        assert await next_frame(raw_ws) == {
            "type": "unsubscribed",
            "channel": "feed",
            "server": True,
        }
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(sub), t(5))

        old_epoch = frame["positions"]["feed"]["epoch"]
        status, body = await api(a, "DELETE", "/api/history/feed")
        assert (status, body) == (200, {"channel": "feed", "deleted": True})
        await api(a, "POST", "/api/publish/feed", {"n": 2})
        _, page = await api(b, "GET", "/api/history/feed")
        assert page["epoch"] != old_epoch and page["offset"] == 1
        assert [m["data"] for m in page["messages"]] == [{"n": 2}]
    await raw_ws.close()


async def test_a_personal_channel_is_refused_to_another_user_even_with_every_grant(
    pair: tuple[HubProcess, HubProcess],
) -> None:
    a, b = pair
    alice = await v1(a, "alice")  # grants nothing
    bob = await v1(b, "bob", channels=["*"])
    anonymous = await v1(b, None, channels=["*"])
    ack = await request(alice, {"op": "subscribe", "channel": "inbox#alice", "id": 1})
    assert ack["type"] == "ack", ack
    for ws in (bob, anonymous):
        refused = await request(ws, {"op": "subscribe", "channel": "inbox#alice", "id": 2})
        assert refused["code"] == "forbidden"
        refused = await request(ws, {"op": "history", "channel": "inbox#alice", "id": 3})
        assert refused["code"] == "forbidden"
    with pytest.raises(InvalidStatus) as raw:
        await connect(b.url(f"inbox%23alice?token={token('bob', channels='*')}"))
    assert raw.value.response.status_code == 403
    own = await connect(b.url(f"inbox%23alice?token={token('alice')}"))
    status, _ = await asyncio.to_thread(
        http, "GET", a.api_url + f"/sse/inbox%23alice?token={token('bob', channels='*')}"
    )
    assert status == 403
    # Publishing needs a grant as usual, or the API key: both copies reach alice.
    assert (await request(bob, {"op": "publish", "channel": "inbox#alice", "data": 1, "id": 4}))[
        "type"
    ] == "ack"
    assert (await api(a, "POST", "/api/publish/inbox%23alice", {"n": 2}))[0] == 200
    got = [await next_frame(alice), await next_frame(alice)]
    assert [g["data"] for g in got] == [1, {"n": 2}] and got[0]["channel"] == "inbox#alice"
    assert await asyncio.wait_for(own.recv(), t(5)) == "1"
    for ws in (alice, bob, anonymous, own):
        await ws.close()


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/api/disconnect", {}, 400, "missing_field"),
        ("/api/disconnect", {"user": 7}, 400, "bad_field"),
        ("/api/disconnect", {"user": ""}, 400, "bad_field"),
        ("/api/disconnect", {"user": "a", "code": 1000}, 400, "bad_field"),
        ("/api/disconnect", {"user": "a", "reason": "x" * 124}, 400, "bad_field"),
        ("/api/disconnect", [1], 400, "bad_request"),
        ("/api/subscribe", {"user": "a"}, 400, "missing_field"),
        ("/api/subscribe", {"user": "a", "channel": "a b"}, 400, "bad_channel"),
        ("/api/unsubscribe", {"user": "a", "channel": 3}, 400, "bad_channel"),
    ],
)
async def test_bad_input_gets_a_400_with_a_stable_code(
    pair: tuple[HubProcess, HubProcess], path: str, body: object, status: int, code: str
) -> None:
    got_status, got = await api(pair[0], "POST", path, body)
    assert (got_status, got["error"]["code"]) == (status, code), got


async def test_the_server_api_needs_the_api_key(pair: tuple[HubProcess, HubProcess]) -> None:
    status, body = await asyncio.to_thread(
        http, "POST", pair[0].api_url + "/api/disconnect", b'{"user":"a"}',
        {"Authorization": f"Bearer {token('a', channels='*')}"},
    )  # fmt: skip
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    status, body = await api(pair[0], "DELETE", "/api/history/nohistory.x")
    assert status == 200  # every channel keeps history here (--history-size)
    assert (await api(pair[0], "POST", "/api/disconnect", b"{"))[0] == 400


async def test_the_control_channel_works_on_a_redis_cluster(
    start_hub: Callable[..., HubProcess],
) -> None:
    """Sharded pub/sub: the command and every reply cross the cluster's partitions."""
    with RedisCluster(3) as cluster:
        args = hub_args(cluster.url, *HISTORY)
        a, b = start_hub(*args, api=True), start_hub(*args)
        alice_a, alice_b = await v1(a, "alice"), await v1(b, "alice")
        status, info = await api(a, "GET", "/api/info")
        assert status == 200 and len(info["instances"]) == 2 and info["missing"] == []
        status, body = await api(a, "POST", "/api/subscribe", {"user": "alice", "channel": "c1"})
        assert (status, body["count"]) == (200, 2), body
        for ws in (alice_a, alice_b):
            assert (await next_frame(ws))["type"] == "subscribed"
        await api(a, "POST", "/api/publish/c1", {"n": 1})
        for ws in (alice_a, alice_b):
            assert (await next_frame(ws))["data"] == {"n": 1}
        old = (await api(a, "GET", "/api/history/c1"))[1]["epoch"]
        assert (await api(a, "DELETE", "/api/history/c1"))[1]["deleted"] is True
        await api(a, "POST", "/api/publish/c1", {"n": 2})
        page = (await api(a, "GET", "/api/history/c1"))[1]
        assert page["epoch"] != old and page["offset"] == 1
        status, body = await api(a, "POST", "/api/disconnect", {"user": "alice"})
        assert (status, body["count"], body["instances"]) == (200, 2, 2)
        for ws in (alice_a, alice_b):
            assert await closed_with(ws) == 4009
