"""WebSocket helpers for the tests."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from typing import Any

from websockets.asyncio.client import ClientConnection

from support.waits import t


async def recv_n(ws: ClientConnection, n: int, timeout: float = 10) -> list[str | bytes]:
    """Receive exactly ``n`` messages, failing after ``timeout`` (scaled) seconds."""
    out: list[str | bytes] = []

    async def run() -> None:
        while len(out) < n:
            out.append(await ws.recv())

    try:
        await asyncio.wait_for(run(), t(timeout))
    except TimeoutError:
        raise AssertionError(f"received {len(out)} of {n} messages: {out[-3:]!r}") from None
    return out


async def assert_silent(ws: ClientConnection, seconds: float = 0.3) -> None:
    """Nothing arrives on ``ws`` for a while (used after a delivery we did wait for)."""
    try:
        msg = await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message {msg!r}")


def never_reading_subscriber(port: int, frame: dict[str, Any]) -> socket.socket:
    """A hub.v1 client with a 4 KB receive buffer that sends one (masked) text frame, then
    reads nothing: what a client that stopped reading costs the hub."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(t(10))
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: hub.v1\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head.split(b"\r\n", 1)[0], head
    payload = json.dumps(frame).encode()
    assert len(payload) < 65536, "the frame is too long for this helper"
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + mask + masked)
    return sock
