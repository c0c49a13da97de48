"""A minimal WebSocket receiver (and publisher) that shares no code with ``hub bench``: the
check on its latency.

    python benchmarks/independent_receiver.py ws://127.0.0.1:8765/xcheck --sockets 500 --seconds 12
    python benchmarks/independent_receiver.py ws://127.0.0.1:8765/xcheck \
        ws://127.0.0.1:8766/xcheck --sockets 1000 --publishers 1 --rate 100 --seconds 6

It opens ``--sockets`` raw-mode sockets (socket ``i`` on URL ``i % len(urls)``) with a hand-made
handshake on ``asyncio.Protocol``, parses server frames itself, and for every frame that carries
a bench header (28 bytes, documented in hub/bench/header.py: magic ``hb`` first, and its last 8
bytes the sender's CLOCK_MONOTONIC time) records now - sent, with ``now`` read once per read, as
the data came in. Nothing else runs on its loop: no progress, no snapshots, no histogram, so its
tail is the server's and the kernel's.

Without ``--publishers`` it only listens (another program publishes, for ``--seconds``, or
until the file ``--until`` names exists). With
``--publishers P --rate R`` it also sends, for ``--seconds``, R messages/s in all from P sockets
of its own (publisher ``j`` on URL ``(sockets + j) % len(urls)``, as ``hub bench fanout`` places
them), each stamped with the time it was due (a late send shows as latency, as in the bench), a
zero mask key and ``--size`` bytes; their own echoes are not counted. It then waits
``--drain`` seconds for what is in flight.

It prints one JSON line when connected, and one at the end: frames, expected (with publishers),
p50/p99/max in ms.
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
from pathlib import Path
from urllib.parse import urlsplit

import uvloop

SENT_NS = struct.Struct("!Q")  # the header's last field, at bytes 20..28
MAGIC = b"hb"
# magic, kind (1: fan-out), flags, run id, publisher id, sequence number, send time
HEADER = struct.Struct("!2sBBIIQQ")


def handshake(url: str) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    return host, port, request


class Receiver(asyncio.Protocol):
    def __init__(
        self, request: bytes, latencies: array[int] | None, ready: asyncio.Future[None]
    ) -> None:
        self.request = request
        self.latencies = latencies  # None: a publisher's socket, which counts nothing
        self.ready = ready
        self.buffer = b""
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
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
            if buf[i] & 0x0F == 0x9:  # a ping: the server's keepalive cuts off who never answers
                self.transport.write(masked_frame(buf[start : start + size], 0x8A))  # type: ignore[attr-defined]
            elif self.latencies is not None and size >= 28 and buf[start : start + 2] == MAGIC:
                self.latencies.append(now - SENT_NS.unpack_from(buf, start + 20)[0])
            i = start + size
        self.buffer = buf[i:]


def masked_frame(payload: bytes, first_byte: int = 0x82) -> bytes:
    """One final client frame (binary, or ``first_byte``), masked with the all-zero key (so
    the payload is as is)."""
    size = len(payload)
    if size < 126:
        head = bytes((first_byte, 0x80 | size))
    else:
        head = bytes((first_byte, 0x80 | 126)) + size.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


async def publish(transport: asyncio.Transport, pub_id: int, rate: float, args: argparse.Namespace):
    """Send at ``rate`` per second for ``args.seconds``; returns how many were sent."""
    padding = b"\0" * max(0, args.size - HEADER.size)
    run_id = int.from_bytes(os.urandom(4), "big")
    period_ns = 1e9 / rate
    started = time.monotonic_ns()
    deadline = started + int(args.seconds * 1e9)
    seq = 0
    while True:
        now = time.monotonic_ns()
        if now >= deadline:
            return seq
        due = int((now - started) / period_ns) + 1
        while seq < due:
            sent_ns = int(started + seq * period_ns)  # when it was due
            header = HEADER.pack(MAGIC, 1, 0, run_id, pub_id, seq, sent_ns)
            transport.write(masked_frame(header + padding))
            seq += 1
        await asyncio.sleep(max(0.0, (started + seq * period_ns - time.monotonic_ns()) / 1e9))


async def connect(
    url: str, latencies: array[int] | None, timeout_s: float = 10.0
) -> asyncio.Transport:
    loop = asyncio.get_running_loop()
    host, port, request = handshake(url)
    ready: asyncio.Future[None] = loop.create_future()
    transport, _ = await loop.create_connection(
        lambda: Receiver(request, latencies, ready), host, port
    )
    await asyncio.wait_for(ready, timeout_s)
    return transport  # type: ignore[return-value]


async def run(args: argparse.Namespace) -> dict[str, float]:
    urls: list[str] = args.urls
    latencies: array[int] = array("q")
    # All at once: on a server busy broadcasting, one at a time takes seconds per hundred.
    receivers = await asyncio.gather(
        *(
            connect(urls[i % len(urls)], latencies, args.connect_timeout)
            for i in range(args.sockets)
        )
    )
    publishers = [
        await connect(urls[(args.sockets + j) % len(urls)], None) for j in range(args.publishers)
    ]
    print(json.dumps({"connected": len(receivers) + len(publishers)}), flush=True)
    sent = 0
    if publishers:
        counts = await asyncio.gather(
            *(publish(p, j, args.rate / len(publishers), args) for j, p in enumerate(publishers))
        )
        sent = sum(counts)
        deadline = time.monotonic() + args.drain
        while len(latencies) < sent * len(receivers) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    else:
        deadline = time.monotonic() + args.seconds
        until = Path(args.until) if args.until else None
        while time.monotonic() < deadline and not (until and until.exists()):  # noqa: ASYNC110 - a stat every 0.1 s
            await asyncio.sleep(0.1)
    for transport in [*receivers, *publishers]:
        transport.close()
    ordered = sorted(latencies)
    out: dict[str, float] = {"frames": len(ordered)}
    if publishers:
        out["expected"] = sent * len(receivers)
    if not ordered:
        return out

    def ms(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6, 3)

    return out | {"p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": ms(1.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("urls", nargs="+", metavar="url")
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--publishers", type=int, default=0)
    parser.add_argument("--rate", type=float, default=100.0, help="messages/s over all publishers")
    parser.add_argument("--size", type=int, default=64, help="message bytes, header included")
    parser.add_argument("--drain", type=float, default=3.0)
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="for each socket's handshake (a hub busy broadcasting to 100,000 may need more)",
    )
    parser.add_argument(
        "--until", metavar="FILE", help="without publishers: stop listening once FILE exists"
    )
    args = parser.parse_args()
    print(json.dumps(uvloop.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
