"""The floor of one delivery: a plain Python ``socket.send`` of one WebSocket frame to each of
1,000 loopback sockets, paced like the hub's fan-out benchmark, in CPU time per send.

    python benchmarks/send_floor.py [--sockets 1000] [--rate 150] [--seconds 10] [--size 102]

Every delivery the hub makes is at least one such send (one frame, one syscall, one socket), so
``benchmarks/cpu_per_delivery.py --floor`` divides the hub's CPU per delivery by this figure,
measured in the same run. The receiving ends live in a child process that only drains, so that
its CPU is not counted; the sender counts its own process CPU (user + system) over the sends.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import selectors
import socket
import time
from multiprocessing.connection import Connection
from typing import Any


def _drain(listener: socket.socket, sockets: int, done: Connection) -> None:
    sel = selectors.DefaultSelector()
    for _ in range(sockets):
        conn, _ = listener.accept()
        conn.setblocking(False)
        sel.register(conn, selectors.EVENT_READ)
    done.send("accepted")
    while not done.poll():
        for key, _ in sel.select(0.2):
            try:
                if not key.fileobj.recv(1 << 16):  # type: ignore[union-attr]
                    sel.unregister(key.fileobj)
            except BlockingIOError:
                pass


def measure(
    sockets: int = 1000, rate: float = 150, seconds: float = 10, size: int = 102
) -> dict[str, Any]:
    """CPU per send of a ``size``-byte frame to each of ``sockets`` sockets, ``rate`` rounds/s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(sockets)
    parent, child = multiprocessing.Pipe()
    drainer = multiprocessing.Process(target=_drain, args=(listener, sockets, child), daemon=True)
    drainer.start()
    conns = [socket.create_connection(listener.getsockname()) for _ in range(sockets)]
    for conn in conns:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.setblocking(False)
    parent.recv()
    frame = b"\x81" + bytes([size - 2]) + b"x" * (size - 2)
    rounds = int(rate * seconds)
    start_usage, start = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    for i in range(rounds):
        for conn in conns:
            conn.send(frame)
        delay = start + (i + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    user = usage.ru_utime - start_usage.ru_utime
    system = usage.ru_stime - start_usage.ru_stime
    used = user + system
    parent.send("stop")
    drainer.join(10)
    for conn in conns:
        conn.close()
    listener.close()
    sends = rounds * sockets
    return {
        "sends": sends,
        "cpu_s": round(used, 3),
        "cpu_ns_per_send": round(used / sends * 1e9, 1),
        "user_ns_per_send": round(user / sends * 1e9, 1),
        "sys_ns_per_send": round(system / sends * 1e9, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=150, help="rounds (messages) per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=102, help="frame bytes (header included)")
    args = parser.parse_args()
    print(json.dumps(measure(args.sockets, args.rate, args.seconds, args.size)))


if __name__ == "__main__":
    main()
