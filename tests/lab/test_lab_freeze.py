"""One hub host frozen for 30 s (SIGSTOP of every process on it) while 10,000 sockets are
connected across the three hubs.

- The other two hubs are unaffected: their delivery latency (a numbered publisher and four
  measuring subscribers, two per hub) is measured before and during the freeze.
- The frozen hub's hub.client subscribers detect it by their keepalive and fail over to the
  next URL, recovering their history channel: 0 lost, 0 duplicated.
- On waking, the frozen hub finds it was deaf (its keepalive sweep is 30 s late), cuts off
  none of the idle sockets that answered its pings meanwhile, drops the connections its
  clients abandoned, serves through Redis again, and keeps nothing it should not
  (connections, subscriptions, channels on /stats; its memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import HubProcess
from support.counting import count, publish_numbered
from support.failover import Follower, lab_hubs, rss_kib, totals
from support.hosts import Host, Lab
from support.waits import t, wait_until
from websockets.asyncio.client import connect

pytestmark = pytest.mark.long_fault

ROOT = Path(__file__).resolve().parents[2]
NUM_IDLE = 10_000
FREEZE_S = 30.0
#: Longer than the hubs' keepalive interval (20 s), so that both windows see its pings.
BEFORE_S = 22.0
NEWS_RATE = 20.0
NUM_NEWS = int(NEWS_RATE * (BEFORE_S + FREEZE_S + 15))
PROBE_RATE = 20.0
NUM_FOLLOWERS = 3


@dataclass
class Topology:
    lab: Lab
    hubs: list[HubProcess]
    followers_host: Host
    clients_host: Host


@pytest.fixture
def topology(lab: Lab, tmp_path: Path) -> Iterator[Topology]:
    redis_host, *hub_hosts = lab.add_hosts("redis", "hub1", "hub2", "hub3")
    clients_host, followers_host = lab.add_hosts("clients", "followers")
    with lab_hubs(redis_host, hub_hosts, tmp_path) as hubs:
        yield Topology(lab, hubs, followers_host, clients_host)


class IdleSockets:
    """``support.idle_sockets`` on a client host: NUM_IDLE lean sockets over the hubs."""

    def __init__(self, host: Host, urls: list[str]) -> None:
        self.urls = urls
        self.proc = host.popen(
            [sys.executable, "-m", "support.idle_sockets", str(NUM_IDLE), *urls],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT / "tests",
            env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"},
        )

    def report(self, ask: bool = True) -> dict[str, dict[str, int]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if ask:
            self.proc.stdin.write(b"\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"idle_sockets exited with {self.proc.poll()}"
        answer: dict[str, dict[str, int]] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


@dataclass
class Probe:
    """Delivery latency on the hubs that stay awake: (arrival time, latency) per subscriber."""

    urls: list[str]
    samples: list[list[tuple[float, float]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    #: What ended the probe early, if anything did, and when (wall clock).
    error: tuple[float, BaseException] | None = None

    async def run(self) -> None:
        try:
            await self._run()
        except Exception as exc:
            self.error = (time.time(), exc)

    async def _run(self) -> None:
        self.samples = [[] for _ in self.urls]
        async with contextlib.AsyncExitStack() as stack:
            subs = [await stack.enter_async_context(connect(url)) for url in self.urls]
            # Raw mode echoes to the sender too: the publisher is the first subscriber, so it
            # reads its echoes (a sender that reads nothing stops hearing its pongs).
            publisher = subs[0]
            readers = [asyncio.create_task(self._read(ws, i)) for i, ws in enumerate(subs)]
            self.ready.set()
            n = 0
            while not self.stop.is_set():
                await publisher.send(json.dumps({"n": n, "ts": time.time()}))
                n += 1
                await asyncio.sleep(1 / PROBE_RATE)
            await asyncio.sleep(1)
            for reader in readers:
                reader.cancel()

    async def _read(self, ws: object, i: int) -> None:
        async for frame in ws:  # type: ignore[attr-defined]
            now = time.time()
            self.samples[i].append((now, now - json.loads(frame)["ts"]))

    def series(self, start: float, end: float, step: float = 2.0) -> list[int]:
        """The worst latency (ms) in each ``step`` of [start, end), over every subscriber."""
        worst = [0.0] * int((end - start) / step + 1)
        for samples in self.samples:
            for at, lat in samples:
                if start <= at < end:
                    i = int((at - start) / step)
                    worst[i] = max(worst[i], lat)
        return [round(w * 1000) for w in worst]

    def window(self, start: float, end: float) -> tuple[float, float, float]:
        """(p99 latency, max latency, longest silence at any subscriber) in [start, end)."""
        latencies: list[float] = []
        silence = 0.0
        for samples in self.samples:
            # From the window's start to its end: a subscriber that went quiet shows.
            times = [start, *(at for at, _ in samples if start <= at < end), end]
            latencies += [lat for at, lat in samples if start <= at < end]
            silence = max([silence] + [b - a for a, b in itertools.pairwise(times)])
        assert len(latencies) > 10, (start, end, len(latencies))
        p99 = statistics.quantiles(latencies, n=100)[98]
        return p99, max(latencies), silence


async def fresh_roundtrip(awake: HubProcess, woken: HubProcess) -> str:
    """A new subscriber on the woken hub hears a publish made through an awake one."""
    async with connect(woken.url("after")) as sub, connect(awake.url("after")) as pub:
        await asyncio.sleep(0.5)  # the woken hub's SUBSCRIBE reaches Redis
        await pub.send("through redis")
        return str(await asyncio.wait_for(sub.recv(), t(10)))


def test_a_frozen_hub_host_leaves_the_others_unaffected_and_recovers(
    topology: Topology,
) -> None:
    hub1, hub2, hub3 = topology.hubs
    idle = IdleSockets(topology.clients_host, [hub.url("idle") for hub in (hub1, hub2, hub3)])
    try:
        opened = idle.report(ask=False)
        print(f"\nidle sockets: {opened}")
        assert sum(opened["open"].values()) == NUM_IDLE, opened
        wait_until(lambda: totals(hub3)["connections"] >= opened["open"][hub3.url("idle")], 30,
                   "hub3 counts its idle sockets")  # fmt: skip
        run_frozen(topology, idle, opened["open"][hub3.url("idle")])
    finally:
        idle.close()


def run_frozen(topology: Topology, idle: IdleSockets, num_idle3: int) -> None:
    lab, (hub1, hub2, hub3) = topology.lab, topology.hubs
    urls = [hub3.url(), hub1.url(), hub2.url()]
    followers = [Follower(urls, NUM_NEWS, timeout_s=150) for _ in range(NUM_FOLLOWERS)]
    # One that stays: no keepalive, hub3 only. It hears the 30 s of backlog after the thaw.
    stayer = Follower([hub3.url()], NUM_NEWS, timeout_s=150, ping_interval_s=0)
    threads = [
        topology.followers_host.thread(lambda f=f: asyncio.run(f.run()), f"follower{i}")
        for i, f in enumerate([*followers, stayer])
    ]
    for f in [*followers, stayer]:
        assert f.subscribed.wait(t(30)), "a follower never subscribed"
    wait_until(lambda: totals(hub3)["connections"] == num_idle3 + NUM_FOLLOWERS + 1, 20,
               "the followers on hub3")  # fmt: skip
    rss_before = rss_kib(hub3)
    probe = Probe([hub1.url("probe"), hub1.url("probe"), hub2.url("probe"), hub2.url("probe")])
    probing = threading.Thread(target=lambda: asyncio.run(probe.run()), daemon=True)
    probing.start()
    assert probe.ready.wait(t(20))
    news = threading.Thread(
        target=lambda: asyncio.run(
            publish_numbered(hub1.url(), "news", range(NUM_NEWS), rate=NEWS_RATE)
        ),
        daemon=True,
    )
    news.start()
    time.sleep(BEFORE_S)

    frozen_at, frozen_wall = time.monotonic(), time.time()
    lab.freeze(hub3.host)
    time.sleep(FREEZE_S)
    lab.thaw(hub3.host)
    thawed_at, thawed_wall = time.monotonic(), time.time()

    hub3.wait_ready(30)
    ready_s = time.monotonic() - thawed_at
    wait_until(lambda: totals(hub3)["connections"] == num_idle3 + 1, 30, "hub3 drops the abandoned")
    dropped_s = time.monotonic() - thawed_at
    for thread in threads:
        thread.result(t(150))
    stayed = count(stayer.numbers, range(NUM_NEWS))
    news.join(t(30))
    probe.stop.set()
    probing.join(t(20))
    assert not probing.is_alive() and probe.error is None, probe.error
    roundtrip = asyncio.run(fresh_roundtrip(hub1, hub3))
    time.sleep(t(2))  # the roundtrip's channel is unsubscribed after --unsubscribe-delay-s
    after = totals(hub3)
    rss_after = rss_kib(hub3)
    sockets = idle.report()

    before = probe.window(frozen_wall - BEFORE_S + 1, frozen_wall)
    during = probe.window(frozen_wall, thawed_wall)
    detected = [f.left(frozen_at) for f in followers]
    failed_over = [f.after(frozen_at, hub1.url()) for f in followers]
    counts = [count(f.numbers, range(NUM_NEWS)) for f in followers]
    print(
        f"\nfreeze of hub3 for {FREEZE_S:.0f} s with {NUM_IDLE} sockets:"
        f"\n  awake hubs' delivery: before p99 {before[0] * 1000:.1f} ms, max "
        f"{before[1] * 1000:.1f} ms, longest silence {before[2] * 1000:.0f} ms; during p99 "
        f"{during[0] * 1000:.1f} ms, max {during[1] * 1000:.1f} ms, longest silence "
        f"{during[2] * 1000:.0f} ms; worst per 2 s (ms) from {BEFORE_S:.0f} s before the "
        f"freeze to 10 s after: {probe.series(frozen_wall - BEFORE_S, thawed_wall + 10)}"
        f"\n  followers: detected after {[round(d, 1) for d in detected]} s, on hub1 after "
        f"{[round(d, 1) for d in failed_over]} s; {[str(c) for c in counts]}"
        f"\n  hub3 after the thaw: ready in {ready_s:.1f} s, abandoned connections dropped in "
        f"{dropped_s:.1f} s; /stats {after}; RSS {rss_before} -> {rss_after} KiB"
        f"\n  the subscriber that stayed on hub3 (no keepalive): {stayed}, "
        f"reconnects {len(stayer.changes) - 1}"
        f"\n  idle sockets: {sockets}"
    )
    # The awake hubs: no stall (a generous bound; this is behaviour, not speed).
    assert during[2] < t(1.0) + 1 / PROBE_RATE, (before, during)
    assert during[1] < max(t(1.0), 2 * before[1]), (before, during)
    assert during[0] < max(t(0.5), 5 * before[0]), (before, during)
    # The frozen hub's hub.client subscribers fail over by their keepalive, losing nothing.
    assert all(c.is_exact for c in counts), [str(c) for c in counts]
    assert all(d <= 11 for d in detected), detected  # 5 s + 5 s, and the sampling's slack
    # The one that stayed gets the backlog Redis held for the frozen hub: nothing lost.
    assert stayed.is_exact and len(stayer.changes) == 1, (stayed, stayer.changes)
    # The woken hub: deaf, not betrayed: every idle socket is still there, on every hub.
    assert not any(sockets["disconnected"].values()), sockets
    assert sum(sockets["open"].values()) == NUM_IDLE, sockets
    assert "late" in hub3.output(), "hub3's keepalive did not notice it had been frozen"
    assert roundtrip == "through redis"
    assert after["connections"] == num_idle3, after
    assert after["subscriptions"] == num_idle3 and after["channels"] == 1, after  # "idle"
    assert rss_after < rss_before * 1.5 + 20_000, (rss_before, rss_after)
