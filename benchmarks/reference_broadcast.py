"""The baseline for the hub's fan-out: a plain websockets broadcast server.

One process, no Redis: ``ws://HOST:PORT/CHANNEL``; each frame received is sent to every client
of the channel, sender included, with one ``websockets.broadcast()`` call per message.
Compression is off and the loop is uvloop, as in the hub.

    python benchmarks/reference_broadcast.py --host 127.0.0.1 --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

CHANNELS: dict[str, set[ServerConnection]] = {}


async def handler(connection: ServerConnection) -> None:
    path = connection.request.path if connection.request is not None else "/"
    channel = path.split("?", 1)[0].removeprefix("/")
    members = CHANNELS.setdefault(channel, set())
    members.add(connection)
    try:
        async for message in connection:
            broadcast(members, message)
    except ConnectionClosed:
        pass
    finally:
        members.discard(connection)
        if not members:
            CHANNELS.pop(channel, None)


async def run(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set_result, None)
    async with serve(
        handler,
        host,
        port,
        compression=None,
        max_size=None,
        ping_interval=None,
        backlog=4096,
    ) as server:
        sockets = server.sockets
        bound = sockets[0].getsockname() if sockets else (host, port)
        print(f"reference_broadcast listening on {bound[0]}:{bound[1]}", flush=True)
        await stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    args = parser.parse_args(argv)
    uvloop.run(run(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
