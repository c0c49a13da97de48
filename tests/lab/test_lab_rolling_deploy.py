"""A rolling deploy behind haproxy, across hosts: each of 3 hub hosts in turn is drained
(SIGTERM; --drain-s keeps it serving with /readyz at 503, then it closes its clients with
1001) and restarted, while 1,000 hub.client subscribers of history channels, on two client
hosts, stay subscribed through haproxy (deploy/haproxy.cfg) on its own host. Every message is
numbered and counted per subscriber."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import HubProcess, RedisServer, t, wait_until
from support.counting import count, history_publisher
from support.hosts import Host, Lab
from support.lab_haproxy import LabHaproxy, ServerState
from websockets.asyncio.client import connect

from hub.client import Client, ClientClosed, Discontinuity

ADMIN = "lab-admin"
DRAIN_S = 5.0
CHANNELS = [f"deploy{i}" for i in range(10)]
CLIENTS_PER_HOST = 500


def hub_args(redis: RedisServer, drain_s: float) -> tuple[str, ...]:
    return (
        "--redis",
        redis.url,
        "--workers",
        "1",
        "--history-size",
        "20000",
        "--history-ttl-s",
        "300",
        "--drain-s",
        str(drain_s),
        "--admin-token",
        ADMIN,
    )


def hub_stats(hub: HubProcess) -> dict[str, Any]:
    request = urllib.request.Request(
        hub.base_url + "/stats", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        doc: dict[str, Any] = json.loads(answer.read())
    return doc


@dataclass
class Fleet:
    """``size`` hub.client subscribers through ``url``, run by :meth:`run` on one host's
    thread; client i reads ``CHANNELS[i % 10]`` and records every number and discontinuity."""

    url: str
    size: int
    numbers: list[list[int]] = field(default_factory=list)
    discontinuities: list[list[str]] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)
    caught_up: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    #: Set by the test once publishing is over: how many numbers each channel got.
    expected: int | None = None
    connected_at_end: int = 0
    acked: int = 0
    connects: int = 0

    def connected(self) -> int:
        return sum(c.is_connected for c in self.clients)

    def connects_now(self) -> int:
        return sum(c.num_connects for c in self.clients)

    async def _read(self, i: int, client: Client) -> None:
        sub = await client.subscribe(CHANNELS[i % len(CHANNELS)])
        self.acked += 1
        while True:
            try:
                async for message in sub:
                    self.numbers[i].append(message.data["n"])
                return
            except Discontinuity as exc:
                self.discontinuities[i].append(repr(exc))
            except ClientClosed:
                return

    def _done(self) -> bool:
        return self.expected is not None and all(
            len(set(numbers)) >= self.expected for numbers in self.numbers
        )

    async def run(self, limit_s: float) -> None:
        self.numbers = [[] for _ in range(self.size)]
        self.discontinuities = [[] for _ in range(self.size)]
        gate = asyncio.Semaphore(50)  # connect in waves, as a real fleet does over time
        readers: list[asyncio.Task[None]] = []

        async def start(i: int) -> None:
            async with gate:
                client = Client(self.url, backoff_initial_s=0.2, backoff_max_s=2.0)
                self.clients.append(client)
                client.start()
                readers.append(asyncio.create_task(self._read(i, client)))
                await client.wait_connected()

        deadline = time.monotonic() + limit_s

        async def until(done: Callable[[], bool], what: str) -> bool:
            """Wait for ``done``; False when the test released the fleet first (it failed
            elsewhere: stop now, so that its own error is the one reported)."""
            while not done():
                if self.release.is_set():
                    return False
                assert time.monotonic() < deadline, what
                await asyncio.sleep(0.1)
            return True

        try:
            connecting = asyncio.ensure_future(
                asyncio.gather(*(start(i) for i in range(self.size)))
            )
            if not await until(connecting.done, "the fleet never connected"):
                connecting.cancel()
                return
            await connecting
            if not await until(lambda: self.acked >= self.size, "the fleet never subscribed"):
                return
            self.subscribed.set()
            if not await until(self._done, "the fleet never caught up"):
                return
            self.caught_up.set()
            await asyncio.to_thread(self.release.wait, limit_s)
            self.connected_at_end = self.connected()
            self.connects = sum(c.num_connects for c in self.clients)
        finally:
            await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
            for reader in readers:
                reader.cancel()


@dataclass
class Drain:
    """What was seen while one hub drained: haproxy's view of it, sampled every 50 ms."""

    server: str
    samples: list[tuple[float, ServerState, bool]]  # (s since SIGTERM, state, hub listening)
    reconnected_s: float = 0.0

    @property
    def down_s(self) -> float:
        """When haproxy stopped routing to it (inf: not before its sockets closed)."""
        return next((at for at, state, _ in self.samples if not state.routable), float("inf"))

    @property
    def closed_s(self) -> float:
        return next(at for at, _, listening in self.samples if not listening)

    def at(self, when: float) -> ServerState:
        return next(state for at, state, _ in self.samples if at >= when)

    def __str__(self) -> str:
        down, closed = self.down_s, self.closed_s
        if down > closed:
            return f"{self.server}: sockets closed at {closed:.2f}s, still UP in haproxy"
        return (
            f"{self.server}: haproxy DOWN {down:.2f}s after SIGTERM with "
            f"{self.at(down).current} clients still on it; sockets closed at {closed:.2f}s; "
            f"sessions routed to it after DOWN: {self.at(closed).total - self.at(down).total}; "
            f"every client connected again {self.reconnected_s:.2f}s after the close"
        )


def drain(hub: HubProcess, server: str, lb: LabHaproxy, fleets: list[Fleet]) -> Drain:
    """SIGTERM the hub; sample haproxy's state and the hub's listener until it closes."""
    connects = sum(f.connects_now() for f in fleets)
    hub.signal(signal.SIGTERM)
    started = time.monotonic()
    samples: list[tuple[float, ServerState, bool]] = []
    while True:
        listening = hub.is_serving()
        samples.append((time.monotonic() - started, lb.servers()[server], listening))
        if not listening:
            break
        assert time.monotonic() - started < t(DRAIN_S + 10), "the hub never closed"
        time.sleep(0.05)
    closed = time.monotonic()
    total = sum(f.size for f in fleets)
    # Each client the hub held connects once more, and all are connected again.
    moved = connects + max(state.current for _, state, _ in samples)

    def back() -> bool:
        again = sum(f.connects_now() for f in fleets)
        return again >= moved and sum(f.connected() for f in fleets) == total

    wait_until(back, 30, "every client back")
    return Drain(server, samples, time.monotonic() - closed)


def publish(redis: RedisServer, stop: threading.Event, sent: list[int]) -> None:
    """10 channels, ``{"n": i}`` to each in turn, 2 rounds a second, until ``stop``."""
    with history_publisher(redis.url) as publisher:
        n = 0
        while not stop.is_set():
            for channel in CHANNELS:
                publisher.publish(channel, data={"n": n})
            n += 1
            sent[0] = n
            stop.wait(0.5)


def start_hub(redis: RedisServer, host: Host, work: Path, drain_s: float) -> HubProcess:
    return HubProcess(*hub_args(redis, drain_s), host=host, log_dir=work).wait_ready(30)


@pytest.mark.long_fault
def test_a_rolling_deploy_behind_haproxy_loses_nothing(lab: Lab, tmp_path: Path) -> None:
    redis_host, lb_host, client1, client2 = lab.add_hosts("redis", "lb", "client1", "client2")
    hub_hosts = lab.add_hosts("hub1", "hub2", "hub3")
    redis = RedisServer(host=redis_host)
    redis.start()
    hubs = [start_hub(redis, h, tmp_path / "gen0", DRAIN_S) for h in hub_hosts]
    lb = LabHaproxy(lb_host, hubs, tmp_path)
    stop, sent = threading.Event(), [0]
    fleets = [Fleet(lb.url, CLIENTS_PER_HOST) for _ in (client1, client2)]
    runs = [
        host.thread(lambda f=fleet: asyncio.run(f.run(t(240))), name=f"fleet-{host.name}")
        for host, fleet in zip((client1, client2), fleets, strict=True)
    ]
    publisher = threading.Thread(target=publish, args=(redis, stop, sent), daemon=True)
    drains: list[Drain] = []
    try:
        for name in ("hub1", "hub2", "hub3"):
            lb.wait_status(name, up=True)
        for fleet, run in zip(fleets, runs, strict=True):
            while not fleet.subscribed.wait(0.5):
                assert run.is_alive(), run.result(0)
        publisher.start()
        time.sleep(2)
        for generation, (i, host) in enumerate(enumerate(hub_hosts), 1):
            name = f"hub{i + 1}"
            drains.append(drain(hubs[i], name, lb, fleets))
            assert hubs[i].stop() == 0
            assert "Traceback" not in hubs[i].output()
            hubs[i] = start_hub(redis, host, tmp_path / f"gen{generation}", DRAIN_S)
            lb.wait_status(name, up=True)
            time.sleep(1)
        stop.set()
        publisher.join(t(10))
        for fleet in fleets:
            fleet.expected = sent[0]
        for fleet, run in zip(fleets, runs, strict=True):
            while not fleet.caught_up.wait(0.5):
                assert run.is_alive(), run.result(0)
        on_hubs = [hub_stats(hub)["totals"]["connections"] for hub in hubs]
        states = lb.servers()
    finally:
        stop.set()
        for fleet in fleets:
            fleet.release.set()
        results = [run.result(t(60)) for run in runs]
        lb.close()
        for hub in hubs:
            hub.stop()
        redis.close()
    assert results == [None, None]
    for each in drains:
        print(each)
    print(f"sent {sent[0]} per channel; clients on the hubs at the end: {on_hubs}")
    print(f"connections opened by the fleet: {sum(f.connects for f in fleets)}")
    counts = [count(numbers, range(sent[0])) for f in fleets for numbers in f.numbers]
    inexact = [str(c) for c in counts if not c.is_exact]
    print(f"{len(counts)} subscribers, {len(inexact)} not exact: {inexact[:5]}")
    assert inexact == []
    assert [d for f in fleets for d in f.discontinuities if d] == []
    # Every client ends on a live hub: connected, and counted by the hubs themselves.
    assert [f.connected_at_end for f in fleets] == [CLIENTS_PER_HOST] * 2
    assert sum(on_hubs) == 2 * CLIENTS_PER_HOST, on_hubs
    assert all(s.status == "UP" for s in states.values()), states
    for each in drains:
        # haproxy stopped routing while the hub still held its clients' sockets, and not one
        # new client was routed to it after that.
        assert each.down_s < each.closed_s, each
        assert each.at(each.down_s).current > 0, each
        assert each.at(each.closed_s).total == each.at(each.down_s).total, each
        assert each.closed_s >= DRAIN_S, each


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_draining_hub_serves_with_readyz_503_then_closes_with_1001(
    tmp_path: Path, workers: str
) -> None:
    """--drain-s: after SIGTERM the hub goes on serving (its clients stay, a new one is still
    accepted, /healthz 200) with /readyz at 503, then closes every client with 1001 and exits
    0; with 2 workers, the supervisor waits for their drain. Without it (--drain-s 0, the
    default) the close comes at once."""
    hub = HubProcess("--drain-s", "1.5", "--workers", workers, log_dir=tmp_path).wait_ready()
    try:
        async with connect(hub.url("room"), open_timeout=t(5)) as ws:
            hub.signal(signal.SIGTERM)
            signalled = time.monotonic()
            # It says why, not "broker not connected". With 2 workers, each answers for itself
            # and the supervisor tells them one after the other: wait for the reason itself.
            await asyncio.to_thread(
                wait_until, lambda: _readyz_says(hub, 503, "draining"), 5, "503: draining"
            )
            assert hub.http("/healthz")[0] == 200
            async with connect(hub.url("room"), open_timeout=t(5)) as late:
                await late.send("still served")
                assert await asyncio.wait_for(ws.recv(), t(5)) == "still served"
            await asyncio.wait_for(ws.wait_closed(), t(10))
            closed_after = time.monotonic() - signalled
        assert ws.close_code == 1001
        assert closed_after >= 1.4, closed_after
        assert hub.proc.wait(t(10)) == 0
        assert "draining: /readyz answers 503 for 1.5s" in hub.output()
    finally:
        hub.stop()


def _readyz_says(hub: HubProcess, status: int, reason: str) -> bool:
    code, body = hub.http("/readyz")
    return code == status and reason in body
