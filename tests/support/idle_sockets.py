"""Hold many idle WebSocket sockets open, cheaply: ``python -m support.idle_sockets N URL...``.

Each socket is hub.bench's lean client (one ``asyncio.Protocol`` object, no task), so one
process holds 10,000 of them in a few tens of MiB. The sockets go round-robin over the URLs
(raw mode: the URL's path is the channel they subscribe to), answer the hubs' pings, and read
nothing else. Once all are connected it prints one JSON line, ``{"open": {url: n},
"failed": {url: n}}``, then the same with ``"disconnected"`` each time stdin gets a line, and
exits when stdin closes (the test's end), closing every socket.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter

import uvloop

from hub.bench.lean import Counters, LeanSocket
from hub.bench.wire import request_prefix, split_url
from hub.runtime.limits import raise_open_file_limit

#: Handshakes in flight at once: enough to be quick, few enough not to overflow a backlog.
_IN_FLIGHT = 200


async def _open(url: str, counters: Counters, sockets: list[LeanSocket]) -> None:
    loop = asyncio.get_running_loop()
    host, port, path, netloc = split_url(url)
    sock = LeanSocket(counters)
    waiter: asyncio.Future[None] = loop.create_future()
    sock.start(request_prefix(netloc, path), waiter)
    await asyncio.wait_for(loop.create_connection(lambda: sock, host, port), 30)
    await asyncio.wait_for(waiter, 30)
    sockets.append(sock)


async def main(count: int, urls: list[str]) -> None:
    raise_open_file_limit()
    counters = {url: Counters() for url in urls}
    sockets: dict[str, list[LeanSocket]] = {url: [] for url in urls}
    failed: Counter[str] = Counter()
    gate = asyncio.Semaphore(_IN_FLIGHT)

    async def one(i: int) -> None:
        url = urls[i % len(urls)]
        async with gate:
            try:
                await _open(url, counters[url], sockets[url])
            except (OSError, TimeoutError, ConnectionError):
                failed[url] += 1

    await asyncio.gather(*(one(i) for i in range(count)))

    def report() -> None:
        open_now = {url: sum(1 for s in sockets[url] if s.transport is not None) for url in urls}
        lost = {url: counters[url].disconnected for url in urls}
        line = {"open": open_now, "failed": dict(failed), "disconnected": lost}
        print(json.dumps(line), flush=True)

    report()
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.readline():
        report()
    for each in sockets.values():
        for sock in each:
            sock.close()
    await asyncio.sleep(0.5)


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), sys.argv[2:]))
