"""Receive-path micro-benchmark of the bench's two WebSocket clients: lean and picows.

A blaster process answers the WebSocket upgrade and then writes a prebuilt stream of bench frames
(sequence numbers 0..N-1, ``--size`` bytes each) to each socket as fast as the kernel takes it.
This process opens ``--sockets`` sockets with the bench's own receiver classes (the same
accounting as a real run: header parsing, latency append, per-publisher tracking) and times how
long it takes until every frame is counted. The server side does no fan-out, so the figure is the
client's receive rate, not a server's send rate.

    python benchmarks/bench_client_receive.py --client lean --sockets 4 --frames 500000
    python benchmarks/bench_client_receive.py --client picows --sockets 4 --frames 500000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import multiprocessing
import socket
import struct
import time
from typing import Any

import uvloop

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def build_stream(frames: int, size: int) -> bytes:
    from hub.bench import header as hdr

    padding = b"\x00" * (size - hdr.HEADER_SIZE)
    pack = hdr.HEADER.pack
    head = bytes((0x82, size)) if size < 126 else struct.pack("!BBH", 0x82, 126, size)
    now = time.monotonic_ns()
    return b"".join(
        head + pack(hdr.MAGIC, hdr.KIND_FANOUT, 0, 0, 0, seq, now) + padding
        for seq in range(frames)
    )


class Blaster(asyncio.Protocol):
    def __init__(self, stream: bytes) -> None:
        self.stream = stream
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        if self.buf is None:
            return  # client frames (close): ignored
        self.buf += data
        if b"\r\n\r\n" not in self.buf:
            return
        key = self.buf.split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0].strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.buf = None  # type: ignore[assignment]
        self.transport.write(self.stream)


def serve(port: int, frames: int, size: int, ready: Any) -> None:
    stream = build_stream(frames, size)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Blaster(stream), "127.0.0.1", port)
        ready.set()
        async with server:
            await asyncio.sleep(600)

    uvloop.run(main())


async def receive(args: argparse.Namespace, port: int) -> dict[str, Any]:
    from picows import ws_connect

    from hub.bench import sockets as bw
    from hub.bench.lean import Counters
    from hub.bench.stats import LatencyRecorder, Ledger
    from hub.bench.wire import request_prefix

    loop = asyncio.get_running_loop()
    counters, ledger, recorder = Counters(), Ledger(), LatencyRecorder()
    total = args.sockets * args.frames
    sockets: list[Any] = []
    cpu0, t0 = time.process_time(), time.monotonic()
    for number in range(args.sockets):
        tracker = ledger.tracker(number, 1)
        if args.client == "lean":
            lean_socket = bw.LeanReceiver(counters, tracker, recorder.pending.append)
            waiter: asyncio.Future[None] = loop.create_future()
            lean_socket.start(request_prefix(f"127.0.0.1:{port}", "/b"), waiter)
            await loop.create_connection(lambda s=lean_socket: s, "127.0.0.1", port)
            await waiter
            sockets.append(lean_socket)
        else:
            listener = bw.PicowsReceiver(counters, tracker, recorder.pending.append)
            await ws_connect(
                lambda li=listener: li,
                f"ws://127.0.0.1:{port}/b",
                enable_auto_ping=False,
                max_frame_size=bw.MAX_FRAME_BYTES,
                read_buffer_init_size=bw.READ_BUFFER_INIT_BYTES,
                use_aiofastnet=False,
                logger_name=bw.PICOWS_LOGGER,
            )
            sockets.append(listener)
    deadline = time.monotonic() + args.timeout
    while ledger.unique() < total and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    for item in sockets:
        item.close()
    return {
        "client": args.client,
        "frames": (unique := ledger.unique()),
        "expected": total,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "frames_per_s": round(unique / wall),
        "frames_per_cpu_s": round(unique / cpu) if cpu else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=("lean", "picows"), default="lean")
    parser.add_argument("--sockets", type=int, default=4)
    parser.add_argument("--frames", type=int, default=500_000, help="per socket")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    blaster = ctx.Process(target=serve, args=(port, args.frames, args.size, ready), daemon=True)
    blaster.start()
    try:
        if not ready.wait(60):
            raise SystemExit("the blaster did not start")
        print(uvloop.run(receive(args, port)))
    finally:
        blaster.terminate()
        blaster.join(10)
        if blaster.is_alive():
            blaster.kill()


if __name__ == "__main__":
    main()
