"""What an idle connection keeps once its handshake is done: none of the handshake, its
attributes in CPython's compact array, no task of hub's own on hub.v1."""

from __future__ import annotations

import asyncio
import gc
import json
import logging

from support import async_wait_until
from support.inprocess import Served, serving
from support.node import RecordingBroker
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.messages import Assembler
from websockets.http11 import Request
from websockets.protocol import Protocol

from hub.ws.connection import HubConnection
from hub.ws.inbox import MAX_WAITING, Inbox

BURST = 24  # connections opened at once: more than the compact array's spare room


def connections(served: Served) -> list[HubConnection]:
    server = served.server._server
    assert server is not None
    return [c for c in server.all_connections if isinstance(c, HubConnection)]


def has_own_dict(conn: object) -> bool:
    """Whether the instance's attributes were moved to a dict of its own (CPython 3.11+):
    its referents then hold that dict, else only the attributes' values."""
    return any(isinstance(r, dict) and "protocol" in r for r in gc.get_referents(conn))


def waits(served: Served) -> list[tuple[list[str], object]]:
    """For each connection's handler task: the coroutines it is inside, and what the
    innermost one awaits."""
    server = served.server._server
    assert server is not None
    out = []
    for task in server.handler_tasks:
        chain, awaited = [], task.get_coro()
        while hasattr(awaited, "cr_await"):
            chain.append(awaited.__qualname__)
            awaited = awaited.cr_await
        # ``await future`` awaits the future's iterator, which refers to the future alone.
        futures = [r for r in gc.get_referents(awaited) if isinstance(r, asyncio.Future)]
        out.append((chain, futures[0] if futures else awaited))
    return out


def assert_waits_on_the_end_alone(served: Served) -> None:
    """An idle connection's handler awaits its end, and nothing else is stacked on it (no
    request loop, no recv(), no queue's future)."""
    ends = {id(c.connection_lost_waiter) for c in connections(served)}
    for chain, awaited in waits(served):
        assert chain[-1] == "WebSocketHandler.__call__", chain
        assert id(awaited) in ends


def assert_handshake_released(conn: HubConnection) -> None:
    assert conn.request is None and conn.response is None and conn.hub_handshake is None
    # The server's parser (whose frame holds the request) gave way to the base frame parser.
    parser = conn.protocol.parser
    assert getattr(parser, "gi_code", None) is Protocol.parse.__code__
    assert not any(isinstance(o, Request) for o in gc.get_referents(parser.gi_frame))
    assert "select_subprotocol" not in vars(conn.protocol)  # websockets' closure per connection
    assert not hasattr(conn, "request_rcvd")
    assert not isinstance(conn.recv_messages, Assembler)
    assert not isinstance(conn.logger, logging.LoggerAdapter)  # one logger for all
    assert not conn.protocol.extensions


async def test_raw_connections_keep_nothing_of_their_handshake() -> None:
    async with serving() as served:
        clients = await asyncio.gather(*(connect(served.url("room")) for _ in range(BURST)))
        try:
            await async_wait_until(
                lambda: served.handler.num_connections == BURST, 5, "every connection open"
            )
            await asyncio.sleep(0.1)  # each handler has reached its wait
            assert_waits_on_the_end_alone(served)
            for conn in connections(served):
                assert not has_own_dict(conn)
                assert_handshake_released(conn)
            # and the connections still work both ways
            await clients[0].send("hello")
            assert [await c.recv() for c in clients] == ["hello"] * BURST
        finally:
            await asyncio.gather(*(c.close() for c in clients))


async def request(ws: ClientConnection, **fields: object) -> dict[str, object]:
    await ws.send(json.dumps(fields))
    answer: dict[str, object] = json.loads(await ws.recv())
    return answer


def inbox_tasks() -> list[asyncio.Task[object]]:
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "Inbox._run"
    ]


async def test_idle_hub_v1_connections_run_no_request_loop() -> None:
    """Requests are served in order; between them, a hub.v1 connection runs nothing: no
    task of its own, and its handler waits for its end alone."""
    async with serving() as served:
        clients = await asyncio.gather(
            *(connect(served.url(), subprotocols=["hub.v1"]) for _ in range(BURST))
        )
        try:
            for i, ws in enumerate(clients):
                ack = await request(ws, op="subscribe", channel="room", id=str(i))
                assert ack["type"] == "ack"
            # Pipelined requests are answered in their order.
            ws = clients[0]
            for i in range(3 * 16):
                await ws.send(json.dumps({"op": "unsubscribe", "channels": ["x"], "id": str(i)}))
            ids = [json.loads(await ws.recv())["id"] for _ in range(3 * 16)]
            assert ids == [str(i) for i in range(3 * 16)]
            await async_wait_until(lambda: not inbox_tasks(), 5, "the requests served")
            assert_waits_on_the_end_alone(served)
            for conn in connections(served):
                assert not has_own_dict(conn)
                assert_handshake_released(conn)
                assert isinstance(conn.hub_on_message, Inbox)
        finally:
            await asyncio.gather(*(c.close() for c in clients))


async def test_a_client_that_pipelines_behind_a_slow_request_is_paused_then_served() -> None:
    """While a subscribe waits on the broker, the requests piled behind it stop the reading
    (as websockets' own queue did); once it is answered all are, in order, and reading goes
    on."""
    broker = RecordingBroker()
    broker.gate = asyncio.Event()
    async with serving(broker=broker) as served:
        async with connect(served.url(), subprotocols=["hub.v1"]) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channel": "slow", "id": "s"}))
            await async_wait_until(lambda: broker.calls, 5, "the subscribe at the broker")
            [conn] = connections(served)
            n = 4 * MAX_WAITING
            for i in range(n):
                await ws.send(json.dumps({"op": "unsubscribe", "channels": ["x"], "id": str(i)}))
            await async_wait_until(lambda: not conn.transport.is_reading(), 5, "the reading paused")
            broker.gate.set()
            ids = [json.loads(await ws.recv())["id"] for _ in range(n + 1)]
            assert ids == ["s", *(str(i) for i in range(n))]
            assert conn.transport.is_reading()
