"""A small Socket.IO server (python-socketio under uvicorn), not hub: the way a chat or
broadcast server is written. ``join`` puts the socket in the room it names (and is acked);
each ``message`` is relayed to everyone in the sender's rooms, sender included, bytes as bytes.
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio
import uvicorn


def build(ping_interval_s: float) -> socketio.ASGIApp:
    sio = socketio.AsyncServer(
        async_mode="asgi",
        logger=False,
        engineio_logger=False,
        # A socket that does not answer a ping within the timeout is closed by the server.
        ping_interval=ping_interval_s,
        ping_timeout=ping_interval_s,
    )

    @sio.event
    async def join(sid: str, room: str) -> bool:
        await sio.enter_room(sid, room)
        return True

    @sio.event
    async def message(sid: str, data: Any) -> None:
        rooms = [room for room in sio.rooms(sid) if room != sid]
        for room in rooms or [None]:
            await sio.emit("message", data, room=room)

    return socketio.ASGIApp(sio)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ping-interval", type=float, default=25.0, metavar="SECONDS")
    args = parser.parse_args()
    uvicorn.run(
        build(args.ping_interval),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        ws="wsproto",
    )


if __name__ == "__main__":
    main()
