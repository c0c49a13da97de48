"""websockets' private internals that hub/ws/connection.py relies on are still there.

A websockets release may rename or reshape any of them without notice; this test says which
one changed, so that an upgrade fails here, clearly, and not in production.
"""

from __future__ import annotations

import ast
import asyncio
import collections
from importlib.metadata import version

import websockets.asyncio.connection as ws_connection
import websockets.asyncio.server as ws_server
import websockets.protocol as ws_protocol
import websockets.streams as ws_streams
from support import ROOT, t
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from hub.ws.connection import PRIVATE_INTERNALS, HubConnection

CLASSES = {
    "Connection": ws_connection.Connection,
    "ServerConnection": ws_server.ServerConnection,
    "Protocol": ws_protocol.Protocol,
    "StreamReader": ws_streams.StreamReader,
}


def changed(name: str) -> str:
    return (
        f"websockets {version('websockets')} changed {name!r}, which hub/ws/connection.py "
        "relies on: adapt HubConnection, or pin websockets to the last minor version that "
        "passes this test (pyproject.toml)"
    )


async def test_private_internals_exist_on_a_live_connection() -> None:
    """Each private name is present on a real server connection, in the shape hub uses."""
    seen: asyncio.Future[HubConnection] = asyncio.get_running_loop().create_future()

    async def handler(ws: ws_server.ServerConnection) -> None:
        assert isinstance(ws, HubConnection)
        seen.set_result(ws)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, create_connection=HubConnection) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/"):
            conn = await asyncio.wait_for(seen, t(5))
            for cls_name, name in PRIVATE_INTERNALS:
                holder = conn.protocol if cls_name == "Protocol" else conn
                assert hasattr(CLASSES[cls_name], name) or hasattr(holder, name), changed(name)
            assert isinstance(conn.pending_pings, dict), changed("pending_pings")
            queue = getattr(getattr(conn.recv_messages, "frames", None), "queue", None)
            assert isinstance(queue, collections.deque), changed("recv_messages.frames.queue")
            assert isinstance(conn.drain_waiters, list), changed("drain_waiters")
            assert callable(conn.send_data) and callable(conn.acknowledge_pings), changed(
                "send_data/acknowledge_pings"
            )
            assert isinstance(conn.request_rcvd, asyncio.Future), changed("request_rcvd")
            assert isinstance(conn.connection_lost_waiter, asyncio.Future), changed(
                "connection_lost_waiter"
            )
            # The server's parser: ServerProtocol.parse, waiting in Protocol.parse's at_eof.
            frames = getattr(conn.protocol.parser, "gi_yieldfrom", None)
            waiting = getattr(frames, "gi_yieldfrom", None)
            assert getattr(frames, "gi_code", None) is ws_protocol.Protocol.parse.__code__, changed(
                "Protocol.parse"
            )
            assert getattr(waiting, "gi_code", None) is ws_streams.StreamReader.at_eof.__code__, (
                changed("StreamReader.at_eof")
            )


def test_private_internals_are_used_in_one_module_only() -> None:
    """No module but hub/ws/connection.py names websockets' private internals."""
    names = {name for _, name in PRIVATE_INTERNALS}
    owner = ROOT / "hub" / "ws" / "connection.py"
    for path in (ROOT / "hub").rglob("*.py"):
        if path == owner:
            continue
        used = {
            node.attr
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute) and node.attr in names
        }
        assert not used, f"{path.relative_to(ROOT)} uses {sorted(used)}: keep them in {owner.name}"
