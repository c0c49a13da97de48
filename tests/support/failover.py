"""What the lab's client-fault tests share: a hub's /stats totals and memory, and a hub.client
subscriber that records its numbers and when its connection changed (to time the detection
of a silent hub and the failover)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hub.client import Client
from support.hosts import Host
from support.processes import HubProcess, RedisServer
from support.waits import t, wait_until

__all__ = ["ADMIN", "Follower", "lab_hubs", "rss_kib", "totals", "wait_connections"]

#: The admin token the lab's hubs run with (/stats on a non-loopback address needs one).
ADMIN = "lab-admin-token"


@contextlib.contextmanager
def lab_hubs(
    redis_host: Host, hub_hosts: Sequence[Host], log_dir: Path, *extra: str
) -> Iterator[list[HubProcess]]:
    """A redis-server on ``redis_host`` and one ready hub (one worker, history on every
    channel, the admin token) on each of ``hub_hosts``; all stopped on exit."""
    redis = RedisServer(host=redis_host)
    redis.start()
    args = (
        "--redis", redis.url, "--workers", "1", "--history-size", "5000",
        "--history-ttl-s", "600", "--unsubscribe-delay-s", "0.2", "--admin-token", ADMIN,
        *extra,
    )  # fmt: skip
    hubs = [HubProcess(*args, host=host, log_dir=log_dir) for host in hub_hosts]
    try:
        for hub in hubs:
            hub.wait_ready(30)
        yield hubs
    finally:
        for hub in hubs:
            hub.stop()
        redis.close()


def totals(hub: HubProcess) -> dict[str, int]:
    """/stats' totals over the hub's workers: connections, subscriptions, channels, …"""
    status, body = hub.http(f"/stats?admin_token={ADMIN}")
    assert status == 200, body
    figures: dict[str, int] = json.loads(body)["totals"]
    return figures


def rss_kib(hub: HubProcess) -> int:
    """The hub process's resident memory (one worker: the process itself)."""
    for line in Path(f"/proc/{hub.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def wait_connections(hub: HubProcess, n: int, timeout: float) -> float:
    """Wait until ``hub`` counts ``n`` open connections; the seconds it took."""
    started = time.monotonic()
    wait_until(lambda: totals(hub)["connections"] == n, timeout, f"{n} connections")
    return time.monotonic() - started


@dataclass
class Follower:
    """A hub.client subscriber of ``channel`` over ``urls`` until it has ``total`` numbers."""

    urls: list[str]
    total: int
    channel: str = "news"
    timeout_s: float = 90
    #: hub.client's keepalive (0: off, to stay on a hub that goes silent for a while).
    ping_interval_s: float = 5.0
    subscribed: threading.Event = field(default_factory=threading.Event)
    numbers: list[int] = field(default_factory=list)
    #: (monotonic time, the client's URL, or None while disconnected), at each change.
    changes: list[tuple[float, str | None]] = field(default_factory=list)

    async def run(self) -> None:
        async with Client(
            self.urls, backoff_max_s=1.0, ping_interval_s=self.ping_interval_s
        ) as client:
            sub = await client.subscribe(self.channel)
            watcher = asyncio.create_task(self._watch(client))
            self.subscribed.set()
            try:
                async with asyncio.timeout(t(self.timeout_s)):
                    async for msg in sub:  # a Discontinuity would fail the test: none expected
                        assert isinstance(msg.data, dict)
                        self.numbers.append(msg.data["n"])
                        if len(set(self.numbers)) >= self.total:
                            return
            finally:
                watcher.cancel()

    async def _watch(self, client: Client) -> None:
        last = client.url
        self.changes.append((time.monotonic(), last))
        while True:
            await asyncio.sleep(0.02)
            if client.url != last:
                last = client.url
                self.changes.append((time.monotonic(), last))

    def after(self, since: float, to: str) -> float:
        """Seconds from ``since`` until the client was connected to ``to``."""
        return next(at for at, url in self.changes if at >= since and url == to) - since

    def left(self, since: float) -> float:
        """Seconds from ``since`` until the client left the URL it had then (a failover that
        takes less than the 20 ms between two looks shows no disconnected moment)."""
        then = [url for at, url in self.changes if at < since][-1]
        return next(at for at, url in self.changes if at >= since and url != then) - since
