"""Two hub instances sharing one redis-server behave as one hub."""

from __future__ import annotations

import asyncio

from support import HubProcess, RedisServer, assert_silent, recv_n
from websockets.asyncio.client import connect


async def test_delivery_across_instances_both_ways_with_echo(
    hub_pair: tuple[HubProcess, HubProcess],
) -> None:
    """A message sent on either instance reaches the other instance and echoes to its sender."""
    a, b = hub_pair
    async with connect(a.url("room")) as wa, connect(b.url("room")) as wb:
        await wa.send("from a")
        assert await recv_n(wa, 1) == ["from a"]
        assert await recv_n(wb, 1) == ["from a"]
        await wb.send("from b")
        assert await recv_n(wa, 1) == ["from b"]
        assert await recv_n(wb, 1) == ["from b"]


async def test_binary_stays_binary_and_text_stays_text(
    hub_pair: tuple[HubProcess, HubProcess],
) -> None:
    """Binary frames arrive as binary, even when their bytes are valid UTF-8, and text as text."""
    a, b = hub_pair
    async with connect(a.url("bin")) as wa, connect(b.url("bin")) as wb:
        payloads: list[str | bytes] = [b"\x00\xff\xfe", b"plain ascii bytes", "text \u00e9", b""]
        for p in payloads:
            await wa.send(p)
        assert await recv_n(wb, len(payloads)) == payloads


async def test_thousand_messages_arrive_in_order(hub_pair: tuple[HubProcess, HubProcess]) -> None:
    """1,000 messages from one sender arrive at a receiver on the other instance in order."""
    a, b = hub_pair
    async with connect(a.url("order")) as wa, connect(b.url("order")) as wb:
        for i in range(1000):
            await wa.send(f"m{i}")
        assert await recv_n(wb, 1000) == [f"m{i}" for i in range(1000)]
        assert await recv_n(wa, 1000) == [f"m{i}" for i in range(1000)]


async def test_channels_are_isolated(hub_pair: tuple[HubProcess, HubProcess]) -> None:
    """Three channels on two instances: each client hears only its own channel."""
    a, b = hub_pair
    names = ["iso-1", "iso-2", "iso:3/x"]
    clients = [await connect(h.url(n)) for n in names for h in (a, b)]
    try:
        for i, n in enumerate(names):
            await clients[2 * i].send(f"to {n}")
        for i, n in enumerate(names):
            for ws in clients[2 * i : 2 * i + 2]:
                assert await recv_n(ws, 1) == [f"to {n}"]
        for ws in clients:
            await assert_silent(ws)
    finally:
        for ws in clients:
            await ws.close()


async def test_broadcast_reaches_200_clients_on_both_instances(
    hub_pair: tuple[HubProcess, HubProcess],
) -> None:
    """One message reaches all of 200 clients spread over both instances."""
    a, b = hub_pair
    clients = await asyncio.gather(*(connect((a, b)[i % 2].url("many")) for i in range(200)))
    try:
        await clients[7].send("to everyone")
        got = await asyncio.gather(*(recv_n(ws, 1) for ws in clients))
        assert got == [["to everyone"]] * 200
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


async def test_redis_publish_injection_reaches_clients(
    hub_pair: tuple[HubProcess, HubProcess], redis_server: RedisServer
) -> None:
    """A plain PUBLISH <prefix><channel> from any Redis client reaches clients, text or binary."""
    a, b = hub_pair
    prefix = a.args[a.args.index("--channel-prefix") + 1]
    async with connect(a.url("news")) as wa, connect(b.url("news")) as wb:
        r = redis_server.client()
        assert r.publish(f"{prefix}news", "breaking \u2603".encode()) == 2
        assert r.publish(f"{prefix}news", b"\x89PNG\xff") == 2
        for ws in (wa, wb):
            assert await recv_n(ws, 2) == ["breaking \u2603", b"\x89PNG\xff"]


async def test_open_connection_already_hears_its_channel(
    hub_pair: tuple[HubProcess, HubProcess], redis_server: RedisServer
) -> None:
    """Once a client's handshake completes, a message published at once reaches it: the hub
    subscribes the channel during the handshake, not after."""
    a, _ = hub_pair
    prefix = a.args[a.args.index("--channel-prefix") + 1]
    r = redis_server.client()
    for i in range(20):
        async with connect(a.url(f"fresh-{i}")) as ws:
            assert r.publish(f"{prefix}fresh-{i}", f"first {i}") == 1
            assert await recv_n(ws, 1) == [f"first {i}"]
