"""A client partitioned from its hub, with no FIN and no RST: iptables DROP between them.

hub.client and /client.js notice it by their own keepalive (a WebSocket ping for hub.client,
an application ``ping`` for the browser) within ping interval + timeout, 10 s by default,
fail over to the other hub and recover the history channel: 0 lost, 0 duplicated. The hub
drops the dead connection by its own ping timeout, and keeps nothing of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import HubProcess
from support.counting import count, history_publisher, publish_numbered
from support.failover import ADMIN, Follower, lab_hubs, rss_kib, totals, wait_connections
from support.hosts import Host, Lab
from support.waits import async_wait_until, t, wait_until

from hub.client import Client

NUM = 600
RATE = 40.0
#: The hubs' keepalive, short so that a hub frees a dead connection within seconds here; the
#: clients keep their defaults (5 s + 5 s), which is what this test measures.
HUB_PING = ("--ping-interval-s", "1", "--ping-timeout-s", "2")


@dataclass
class Hubs:
    hub1: HubProcess
    hub2: HubProcess
    client: Host


@pytest.fixture
def hubs(lab: Lab, tmp_path: Path) -> Iterator[Hubs]:
    redis_host, host1, host2, client_host = lab.add_hosts("redis", "hub1", "hub2", "client")
    with lab_hubs(redis_host, [host1, host2], tmp_path, *HUB_PING) as (hub1, hub2):
        yield Hubs(hub1, hub2, client_host)


def start_publisher(hub: HubProcess) -> threading.Thread:
    thread = threading.Thread(
        target=lambda: asyncio.run(publish_numbered(hub.url(), "news", range(NUM), rate=RATE)),
        daemon=True,
    )
    thread.start()
    return thread


def test_hub_client_fails_over_from_a_silent_hub_and_the_hub_frees_it(lab: Lab, hubs: Hubs) -> None:
    hub1, hub2 = hubs.hub1, hubs.hub2
    follower = Follower([hub1.url(), hub2.url()], NUM)
    reading = hubs.client.thread(lambda: asyncio.run(follower.run()), "follower")
    assert follower.subscribed.wait(t(20)), "the subscriber never subscribed"
    wait_connections(hub1, 1, 10)
    rss_before = rss_kib(hub1)
    publisher = start_publisher(hub2)
    wait_until(lambda: len(follower.numbers) >= 80, 20, "the first messages")

    lab.partition(hubs.client, hub1.host)  # no FIN, no RST: both directions just vanish
    cut_at = time.monotonic()
    hub_freed_s = wait_connections(hub1, 0, 30)
    reading.result(t(120))
    publisher.join(t(30))
    detected_s = follower.left(cut_at)
    failed_over_s = follower.after(cut_at, hub2.url())

    counts = count(follower.numbers, range(NUM))
    print(
        f"\nhub.client partitioned from its hub: detected in {detected_s:.1f} s, on the other "
        f"hub after {failed_over_s:.1f} s; the hub dropped it after {hub_freed_s:.1f} s; "
        f"{counts}; hub RSS {rss_before} -> {rss_kib(hub1)} KiB"
    )
    assert counts.is_exact, f"{counts}; changes {follower.changes}"
    # The default keepalive: a ping every 5 s, 5 s for its pong (+ the sampling's slack).
    assert 4.5 <= detected_s <= 11, follower.changes
    assert failed_over_s <= detected_s + 3, follower.changes
    # The hub (ping every 1 s, 2 s timeout) freed it: nothing stays per connection.
    figures = totals(hub1)
    assert figures["subscriptions"] == 0 and figures["channels"] == 0, figures

    lab.heal()  # what TCP still held for the dead connection finds an RST, not a ghost
    time.sleep(t(3))
    figures = totals(hub1)
    assert figures["connections"] == 0 and figures["subscriptions"] == 0, figures


async def test_client_js_fails_over_from_a_silent_hub(lab: Lab, hubs: Hubs) -> None:
    """The browser (headless Chromium, on the controller) is cut off from hub1 by DROP
    rules on hub1's side: client.js's application ping times out, it fails over to hub2 and
    recovers the history channel; hub1 drops the connection by its own ping timeout."""
    from support.browser import chromium

    hub1, hub2 = hubs.hub1, hubs.hub2
    async with chromium() as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(hub2.base_url + "/healthz")
        await page.evaluate(
            """async ([base, urls]) => {
              const { HubClient } = await import(base + "/client.js");
              window.got = [];
              window.changes = [];
              window.hub = new HubClient(urls, { minDelayMs: 100, maxDelayMs: 1000 });
              for (const name of ["connected", "disconnected"]) {
                window.hub.on(name, (ev) => window.changes.push({ at: Date.now(), name, ev }));
              }
              await new Promise((resolve, reject) => {
                window.hub.subscribe("news", (value) => window.got.push(value.n), {
                  onEvent: (ev) => (ev.type === "subscribed" ? resolve() : reject(ev)),
                });
              });
            }""",
            [hub2.base_url, [hub1.url(), hub2.url()]],
        )
        await asyncio.to_thread(wait_connections, hub1, 1, 10)
        publisher = asyncio.create_task(publish_numbered(hub2.url(), "news", range(NUM), rate=RATE))

        async def got() -> list[int]:
            numbers: list[int] = await page.evaluate("window.got")
            return numbers

        async def has(n: int) -> bool:
            return len(set(await got())) >= n

        await async_wait_until(lambda: has(80), 20, "the first messages in the page")
        # The browser runs on the controller: cut hub1 off from it alone (Redis stays).
        lab.partition(hub1.host, [], controller=True)
        cut_at = time.time()
        hub_freed_s = await asyncio.to_thread(_wait_zero_from_hub2_side, lab, hub1)
        await publisher
        with contextlib.suppress(AssertionError):  # counted below, which says what is missing
            await async_wait_until(lambda: has(NUM), 40, "every message in the page")
        changes = await page.evaluate("window.changes")
        counts = count(await got(), range(NUM))
        await page.close()
    lost = next(c["at"] / 1000 for c in changes if c["name"] == "disconnected")
    back = next(
        c["at"] / 1000 for c in changes if c["name"] == "connected" and hub2.url() in c["ev"]["url"]
    )
    print(
        f"\nclient.js partitioned from its hub: detected in {lost - cut_at:.1f} s, on the other "
        f"hub after {back - cut_at:.1f} s; the hub dropped it after {hub_freed_s:.1f} s; {counts}"
    )
    assert not errors, errors
    assert counts.is_exact, f"{counts}; changes {changes}"
    disconnected = [c for c in changes if c["name"] == "disconnected"]
    assert disconnected[0]["ev"]["code"] == 4000, changes  # its own ping, not a TCP timeout
    assert 4.5 <= lost - cut_at <= 11, changes
    assert back - cut_at <= lost - cut_at + 3, changes


def _wait_zero_from_hub2_side(lab: Lab, hub1: HubProcess) -> float:
    """hub1's /stats, read from a host that is not cut off, until its connections are 0."""
    started = time.monotonic()
    probe = lab.add_host("probe")
    url = f"{hub1.base_url}/stats?admin_token={ADMIN}"

    def zero() -> bool:
        import urllib.request

        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(json.loads(answer.read())["totals"]["connections"] == 0)

    probe.thread(lambda: wait_until(zero, 30, "hub1 drops the dead connection")).result(t(40))
    return time.monotonic() - started


SLOW_TOTAL = 400


@contextlib.contextmanager
def slow_hub(lab: Lab, tmp_path: Path) -> Iterator[tuple[HubProcess, Host]]:
    """One hub whose link out is shaped to 2 Mbit/s (tc tbf on its eth0), and a client host."""
    redis_host, hub_host, client_host = lab.add_hosts("redis", "hub1", "client")
    with lab_hubs(redis_host, [hub_host], tmp_path, "--max-buffered-bytes", "67108864") as (hub,):
        hub_host.run("tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "2mbit",
                     "burst", "32kbit", "latency", "10s")  # fmt: skip
        yield hub, client_host


def publish_backlog(hub: HubProcess) -> float:
    """1.6 MB of numbered messages into "slow" through Redis; the monotonic time when done."""
    redis_url = hub.args[hub.args.index("--redis") + 1]
    with history_publisher(redis_url) as publisher:
        for n in range(SLOW_TOTAL):
            publisher.publish("slow", data={"n": n, "pad": "x" * 4000})
    return time.monotonic()


def test_a_slow_link_is_not_taken_for_a_silent_hub(lab: Lab, tmp_path: Path) -> None:
    """hub1's link to the client is shaped to 2 Mbit/s, and 1.6 MB of messages are on their
    way: each pong waits seconds behind them. Frames keep arriving, so hub.client keeps the
    connection (its keepalive counts any frame as a sign of life) and loses nothing."""
    with slow_hub(lab, tmp_path) as (hub, client_host):
        subscribed = threading.Event()

        async def read() -> tuple[list[int], int]:
            async with Client(hub.url(), ping_interval_s=0.5, ping_timeout_s=0.5) as client:
                sub = await client.subscribe("slow")
                subscribed.set()
                numbers = []
                async with asyncio.timeout(t(60)):
                    async for msg in sub:
                        assert isinstance(msg.data, dict)
                        numbers.append(msg.data["n"])
                        if len(numbers) == SLOW_TOTAL:
                            break
                return numbers, client.num_connects

        reading = client_host.thread(lambda: asyncio.run(read()), "reader")
        assert subscribed.wait(t(20))
        started = publish_backlog(hub)
        numbers, num_connects = reading.result(t(90))
        took = time.monotonic() - started
    print(f"\nhub.client: 1.6 MB through 2 Mbit/s in {took:.1f} s, {num_connects} connection(s)")
    assert took > 3, "the link was not slow: this test proves nothing"
    assert num_connects == 1, "a slow but live hub was abandoned"
    assert count(numbers, range(SLOW_TOTAL)).is_exact


async def test_client_js_on_a_slow_link_keeps_its_hub(lab: Lab, tmp_path: Path) -> None:
    """The same slow link to the browser (on the controller): client.js's application ping is
    answered seconds late, behind the backlog, but frames keep coming: no failover."""
    from support.browser import chromium

    with slow_hub(lab, tmp_path) as (hub, _):
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(hub.base_url + "/healthz")
            await page.evaluate(
                """async ([base, url]) => {
                  const { HubClient } = await import(base + "/client.js");
                  window.got = [];
                  window.connects = 0;
                  window.hub = new HubClient(url, { pingIntervalMs: 500, pingTimeoutMs: 500 });
                  window.hub.on("connected", () => window.connects++);
                  await new Promise((resolve) => {
                    window.hub.subscribe("slow", (value) => window.got.push(value.n), {
                      onEvent: resolve,
                    });
                  });
                }""",
                [hub.base_url, hub.url()],
            )
            started = await asyncio.to_thread(publish_backlog, hub)

            async def has_all() -> bool:
                return bool(await page.evaluate(f"window.got.length >= {SLOW_TOTAL}"))

            await async_wait_until(has_all, 60, "the whole backlog in the page")
            took = time.monotonic() - started
            numbers = await page.evaluate("window.got")
            connects = await page.evaluate("window.connects")
            await page.close()
    print(f"\nclient.js: 1.6 MB through 2 Mbit/s in {took:.1f} s, {connects} connection(s)")
    assert took > 3, "the link was not slow: this test proves nothing"
    assert connects == 1, "a slow but live hub was abandoned"
    assert count(numbers, range(SLOW_TOTAL)).is_exact
