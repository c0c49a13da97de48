"""A small Socket.IO server (python-socketio under uvicorn), not hub: the way a chat or
broadcast server is written. ``join`` puts the socket in the room it names (and is acked);
each ``message`` is relayed to everyone in the sender's rooms, sender included, bytes as bytes.
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio
import uvicorn


def build() -> socketio.ASGIApp:
    sio = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)

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
    args = parser.parse_args()
    uvicorn.run(build(), host="127.0.0.1", port=args.port, log_level="warning", ws="wsproto")


if __name__ == "__main__":
    main()
