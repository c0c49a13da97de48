"""The client's rule per close code, against a WebSocket server that closes as the test says.

hub itself never closes a hub.v1 connection with 1008 or 1000 (it answers ``rate_limited``
and keeps the connection), so a small real server stands in for a hub that does: the client
must not reconnect blindly.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from support import t
from websockets.asyncio.server import Server, ServerConnection, serve

from hub.client import Client, ClientClosed


async def closing_server(code: int, opened: list[int]) -> tuple[Server, str]:
    async def handler(ws: ServerConnection) -> None:
        opened.append(1)
        await ws.recv()  # the subscribe
        await ws.close(code, "test")

    server = await serve(handler, "127.0.0.1", 0, subprotocols=["hub.v1"])  # type: ignore[list-item]
    port = next(iter(server.sockets)).getsockname()[1]
    return server, f"ws://127.0.0.1:{port}"


@pytest.mark.parametrize(("code", "attempts"), [(1008, 3), (1000, 1)])
async def test_policy_and_normal_closes_stop_the_client(code: int, attempts: int) -> None:
    """1008 three times with nothing acknowledged: stop. 1000: stop at once."""
    opened: list[int] = []
    server, url = await closing_server(code, opened)
    try:
        async with Client(url, backoff_initial_s=0.01, backoff_max_s=0.05) as client:
            with pytest.raises(ClientClosed) as raised:
                await asyncio.wait_for(client.subscribe("news"), t(10))
        assert raised.value.code == code
        assert len(opened) == attempts
    finally:
        server.close()


async def test_malformed_frames_are_ignored_not_fatal() -> None:
    """A server that sends junk (not JSON, odd shapes) costs a warning per frame; the
    subscription is acknowledged and the good message after the junk arrives."""
    junk = ["not json", "[1]", '{"type":"message"}', '{"type":"gap","channel":"news"}',
            '{"type":"message","channel":"news","binary":"***"}']  # fmt: skip

    async def handler(ws: ServerConnection) -> None:
        request = json.loads(await ws.recv())
        for frame in junk:
            await ws.send(frame)
        ack = {"type": "ack", "op": "subscribe", "id": request["id"], "positions": [1]}
        await ws.send(json.dumps(ack))
        await ws.send(json.dumps({"type": "ack", "op": "subscribe", "id": request["id"]}))
        await ws.send(json.dumps({"type": "message", "channel": "news", "text": "good"}))
        await ws.wait_closed()

    server = await serve(handler, "127.0.0.1", 0, subprotocols=["hub.v1"])  # type: ignore[list-item]
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        async with Client(f"ws://127.0.0.1:{port}") as client:
            sub = await asyncio.wait_for(client.subscribe("news"), t(10))
            assert (await asyncio.wait_for(anext(sub), t(10))).text == "good"
            assert client.num_connects == 1
    finally:
        server.close()


async def test_a_hub_that_acks_then_closes_1011_is_retried_with_backoff() -> None:
    """An ack does not start the backoff over; only a connection that stayed open
    STABLE_CONNECTION_S does. So a hub that acks the subscribe and closes with 1011, again
    and again, gets a few connections in 4 s, not one per round trip (70 before the fix).
    Twelve is far above what full jitter draws with ceilings 0.1, 0.2, ... 5 s (about 7)."""
    opened: list[int] = []

    async def handler(ws: ServerConnection) -> None:
        opened.append(1)
        request = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "ack", "op": "subscribe", "id": request["id"]}))
        await ws.close(1011, "a server bug")

    server = await serve(handler, "127.0.0.1", 0, subprotocols=["hub.v1"])  # type: ignore[list-item]
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        async with Client(f"ws://127.0.0.1:{port}", backoff_initial_s=0.1) as client:
            await asyncio.wait_for(client.subscribe("news"), t(5))
            await asyncio.sleep(4)
    finally:
        server.close()
    assert 1 <= len(opened) <= 12, len(opened)
