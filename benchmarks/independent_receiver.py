"""A minimal WebSocket receiver that shares no code with ``hub bench``: the check on its latency.

    python benchmarks/independent_receiver.py ws://127.0.0.1:8765/xcheck --sockets 500 --seconds 12

It opens ``--sockets`` raw-mode sockets with a hand-made handshake on ``asyncio.Protocol``,
parses server frames itself, and for every frame that carries a bench header (28 bytes,
documented in hub/bench/header.py: its last 8 bytes are the sender's CLOCK_MONOTONIC time)
records now - sent. It prints one JSON line: frames, p50/p99/max in ms. Nothing else runs on
its loop: no progress, no snapshots, no histogram, so its tail is the server's and the kernel's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import time
from array import array
from urllib.parse import urlsplit

import uvloop

SENT_NS = struct.Struct("!Q")  # the header's last field, at bytes 20..28
MAGIC = b"hb"


class Receiver(asyncio.Protocol):
    def __init__(self, request: bytes, latencies: array[int], ready: asyncio.Future[None]) -> None:
        self.request = request
        self.latencies = latencies
        self.ready = ready
        self.buffer = b""
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buf = self.buffer + data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(buf[: buf.find(b"\r\n")].decode()))
                return
            self.upgraded = True
            self.ready.set_result(None)
            buf = buf[end + 4 :]
        i, n = 0, len(buf)
        while n - i >= 2:
            size = buf[i + 1] & 0x7F
            head = 2
            if size == 126:
                if n - i < 4:
                    break
                size, head = int.from_bytes(buf[i + 2 : i + 4], "big"), 4
            elif size == 127:
                if n - i < 10:
                    break
                size, head = int.from_bytes(buf[i + 2 : i + 10], "big"), 10
            if n - i < head + size:
                break
            start = i + head
            if size >= 28 and buf[start : start + 2] == MAGIC:
                self.latencies.append(now - SENT_NS.unpack_from(buf, start + 20)[0])
            i = start + size
        self.buffer = buf[i:]


async def run(url: str, sockets: int, seconds: float) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: array[int] = array("q")
    loop = asyncio.get_running_loop()
    transports = []
    for _ in range(sockets):
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        ready: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda r=request, f=ready: Receiver(r, latencies, f), host, port
        )
        await asyncio.wait_for(ready, 10)
        transports.append(transport)
    print(json.dumps({"connected": len(transports)}), flush=True)
    await asyncio.sleep(seconds)
    for transport in transports:
        transport.close()
    ordered = sorted(latencies)
    if not ordered:
        return {"frames": 0}

    def ms(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6, 3)

    return {"frames": len(ordered), "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": ms(1.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    print(json.dumps(uvloop.run(run(args.url, args.sockets, args.seconds))), flush=True)


if __name__ == "__main__":
    main()
