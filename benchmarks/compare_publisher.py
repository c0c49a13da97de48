"""The neutral fan-out publisher of benchmarks/compare_load_tools.py, for the tools that do not
stamp their messages (Artillery, Tsung): it sends ``--rate`` binary messages per second for
``--seconds`` to one raw-mode hub URL, each starting with hub bench's 28-byte header
(hub/bench/header.py: magic ``hb``, kind, flags, run id, publisher id, sequence, send time in
CLOCK_MONOTONIC ns), so that benchmarks/independent_receiver.py (and an Artillery hook) can time
every delivery. The send time is when the message was due, as hub bench does.

    python benchmarks/compare_publisher.py ws://127.0.0.1:8765/xcheck --rate 100 --seconds 10

It prints one JSON line, ``{"sent": N, "late_max_ms": ...}``, when done. What the hub sends back
to it (raw mode echoes to the sender too) is read and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import struct
import time

import uvloop
from websockets.asyncio.client import connect

HEADER = struct.Struct("!2sBBIIQQ")
KIND_FANOUT = 1


async def publish(url: str, rate: float, seconds: float, size: int) -> dict[str, float]:
    run_id = random.getrandbits(32)
    count = int(rate * seconds)
    padding = b"\0" * max(0, size - HEADER.size)
    late_max = 0
    async with connect(url, compression=None, max_size=None, ping_interval=None) as ws:

        async def drain() -> None:
            async for _ in ws:
                pass

        drainer = asyncio.create_task(drain())
        start = time.monotonic_ns()
        for seq in range(count):
            due = start + int(seq * 1e9 / rate)
            wait = due - time.monotonic_ns()
            if wait > 0:
                await asyncio.sleep(wait / 1e9)
            late_max = max(late_max, time.monotonic_ns() - due)
            await ws.send(HEADER.pack(b"hb", KIND_FANOUT, 0, run_id, 0, seq, due) + padding)
        await asyncio.sleep(0.2)
        drainer.cancel()
    return {"sent": count, "late_max_ms": round(late_max / 1e6, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    result = uvloop.run(publish(args.url, args.rate, args.seconds, args.size))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
