"""Presence over real redis-server and hub processes: who is subscribed, cluster-wide."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from support import HubProcess, RedisServer, free_port, http, t
from websockets.asyncio.client import ClientConnection, connect

SECRET = "presence-test-secret-that-is-long-enough"
TTL_S = 2.0


def token(user: str) -> str:
    claims = {"sub": user, "channels": ["*"], "exp": int(time.time()) + 600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def v1(hub: HubProcess, user: str) -> ClientConnection:
    return await connect(
        hub.url(f"?token={token(user)}"),
        subprotocols=["hub.v1"],  # type: ignore[list-item]
    )


async def request(ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    """Send a request and return its answer (other frames, such as events, are kept)."""
    await ws.send(json.dumps(frame))
    while True:
        answer: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), t(5)))
        if answer.get("id") == frame["id"]:
            return answer
        EVENTS.setdefault(id(ws), []).append(answer)


EVENTS: dict[int, list[dict[str, Any]]] = {}


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    kept = EVENTS.get(id(ws))
    if kept:
        return kept.pop(0)
    event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), t(5)))
    return event


async def users(ws: ClientConnection, channel: str) -> list[str | None]:
    answer = await request(ws, {"op": "presence", "channel": channel, "id": "p"})
    assert answer["type"] == "presence", answer
    assert answer["num_clients"] == len(answer["clients"])
    return sorted(c["user"] for c in answer["clients"])


async def test_presence_lists_joins_leaves_and_forgets_a_crashed_instance(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess], tmp_path: Path
) -> None:
    """Three clients on two instances are listed; join and leave events arrive; a clean
    disconnect leaves at once; a SIGKILLed instance's clients disappear within the TTL."""
    config = tmp_path / "hub.toml"
    config.write_text('[[namespaces]]\npattern = "room.*"\npresence = true\njoin_leave = true\n')
    args = (
        "--redis", redis_server.url, "--workers", "1", "--channel-prefix", f"p{free_port()}:",
        "--config", str(config), "--jwt-secret", SECRET, "--presence-ttl-s", str(TTL_S),
    )  # fmt: skip
    a, b = start_hub(*args), start_hub(*args, api=True)
    watcher = await v1(b, "watcher")
    ack = await request(
        watcher, {"op": "subscribe", "channel": "room.1", "join_leave": True, "id": "w"}
    )
    assert ack["type"] == "ack"
    clients = {"alice": await v1(a, "alice"), "bob": await v1(a, "bob")}
    clients["carol"] = await v1(b, "carol")
    for ws in clients.values():
        answer = await request(ws, {"op": "subscribe", "channel": "room.1", "id": "s"})
        assert answer["type"] == "ack"
    joins = [await next_event(watcher) for _ in range(4)]  # its own join too
    assert sorted(e["user"] for e in joins) == ["alice", "bob", "carol", "watcher"]
    assert {e["type"] for e in joins} == {"join"} and {e["channel"] for e in joins} == {"room.1"}
    assert await users(watcher, "room.1") == ["alice", "bob", "carol", "watcher"]
    status, body = http("GET", f"{b.api_url}/api/presence/room.1")
    assert status == 200 and body["num_clients"] == 4 and body["num_users"] == 4

    await clients["carol"].close()
    leave = await next_event(watcher)
    assert (leave["type"], leave["user"]) == ("leave", "carol")
    assert await users(watcher, "room.1") == ["alice", "bob", "watcher"]

    a.signal(signal.SIGKILL)
    deadline = time.monotonic() + t(TTL_S * 3)
    while await users(watcher, "room.1") != ["watcher"]:
        assert time.monotonic() < deadline, "a crashed instance's clients outlived the TTL"
        await asyncio.sleep(0.2)

    error = await request(watcher, {"op": "presence", "channel": "plain", "id": "x"})
    assert error["type"] == "error" and error["code"] == "presence_off"
    await watcher.close()
